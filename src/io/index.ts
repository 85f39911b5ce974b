// The I/O interfaces (types only). Real implementations are imported from their own modules
// (node-disk.ts, system-clock.ts, rpc-transport.ts), so that code importing this index, the
// simulator included, never loads node:fs, node:net or real timers.

export type { DirectIo, Disk, DiskFile, DiskSpace, OpenMode } from './disk.ts';
export { firstBadCrc, isErrno } from './disk.ts';
export type { Clock, Timer } from './clock.ts';
export type { Connection, Transport } from './transport.ts';
