// The master process: the RPC server over the journal and the metadata state machine (src/meta/),
// its HTTP face, and its hold on the data directory.

export { startMaster, masterLimitsDefault, type Master, type MasterLimits, type MasterLoad, type MasterOptions } from './server.ts';
