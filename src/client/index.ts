// The client library: how every front-end reaches the masters (metadata) and the workers (data).

export { MasterClient, type MasterClientOptions } from './master-client.ts';
export { DataClient, type DataClientOptions } from './data-client.ts';
export { FileReader, FileWriter, streamBytesMaxDefault, WriteBudget, type FileRef, type LentBytes } from './file-io.ts';
export { endWriteSession, fileRef, getFile, isPutTempName, putFile, transferTempName, truncateFile, type PutOptions, type SessionCommit } from './files.ts';
