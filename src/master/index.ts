// The master process: the RPC server over the journal and the metadata state machine (src/meta/),
// its HTTP face, and its hold on the data directory.

export { startMaster, type Master, type MasterOptions } from './server.ts';
