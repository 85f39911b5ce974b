// The ZooKeeper journal's checkpoints: the state machine at an applied index, in a local snapshot
// file (the Raft journal's format: streamed, checksummed, renamed into place), with the log
// position that follows it, so that a restart reads only the log after it. A master that finds the
// log it needs deleted fetches a peer's newest checkpoint over the masters' RPC.

import { CairnError, ErrorCode } from '../../errors.ts';
import type { Connection, Disk, Transport } from '../../io/index.ts';
import { reply } from '../../rpc/handler.ts';
import { loadNewestSnapshot, pruneSnapshots, SnapshotWriter, type SnapshotFile } from '../raft/snapshot-file.ts';
import { framePieces, readFrames } from '../raft/snapshot-frames.ts';

/** The log position right after a checkpoint's index: where reading resumes. */
export interface LogPosition {
  bucket: number;
  seq: number;
}

export interface CheckpointInfo {
  index: number;
  epoch: number;
  position: LogPosition;
}

export const fetchMethod = 'journal.zk.checkpoint';
const fetchPieceBytes = 4 << 20;
const keepFiles = 2;

function encodePosition(p: LogPosition): Uint8Array {
  return Buffer.from(JSON.stringify({ bucket: p.bucket, seq: p.seq }));
}

function decodePosition(bytes: Uint8Array | undefined, file: string): LogPosition {
  try {
    const v = JSON.parse(Buffer.from(bytes ?? []).toString('utf8')) as { bucket?: unknown; seq?: unknown };
    if (Number.isSafeInteger(v.bucket) && Number.isSafeInteger(v.seq) && (v.bucket as number) >= 0 && (v.seq as number) >= 0) return { bucket: v.bucket as number, seq: v.seq as number };
  } catch {
    // reported below
  }
  throw new CairnError(ErrorCode.Unavailable, `checkpoint ${file} has no log position: it is not a ZooKeeper journal checkpoint`);
}

/**
 * Writes a checkpoint: frame 0 is the log position, then the state machine's frames. `take` runs
 * once the file is open; the frames it returns are read from the live state as they are written,
 * so nothing may be applied until this resolves: the position, the index and the state all come
 * from one moment. Written synchronously (one step), or `inSteps`: by asynchronous writes with a
 * turn of the event loop after each, for a caller that pauses applying meanwhile and must keep
 * answering (a standby holding a ZooKeeper session). Keeps the two newest files.
 */
export async function writeCheckpoint(
  disk: Disk,
  dir: string,
  take: () => { info: CheckpointInfo; frames: Iterable<Uint8Array> },
  inSteps = false,
): Promise<{ file: SnapshotFile; info: CheckpointInfo }> {
  const w = await SnapshotWriter.create(disk, dir);
  let info: CheckpointInfo;
  try {
    const taken = take();
    info = taken.info;
    w.begin({ index: info.index, term: info.epoch, conf: { voters: [], learners: [] } });
    for (const piece of framePieces(prepend(encodePosition(info.position), taken.frames))) {
      if (inSteps) await w.writeAsync(piece); // each write's completion is a turn of the event loop
      else w.write(piece);
    }
  } catch (err) {
    await w.abort();
    throw err;
  }
  const file = await w.finish();
  await pruneSnapshots(disk, dir, keepFiles, { temporary: false });
  return { file, info };
}

function* prepend(first: Uint8Array, rest: Iterable<Uint8Array>): Generator<Uint8Array> {
  yield first;
  yield* rest;
}

/** The newest checkpoint that verifies, with the state machine's frames to restore from. */
export async function loadCheckpoint(disk: Disk, dir: string): Promise<{ file?: SnapshotFile; info?: CheckpointInfo; frames?: Iterable<Uint8Array>; skipped: string[] }> {
  await pruneSnapshots(disk, dir, Number.MAX_SAFE_INTEGER); // leftovers of a crashed write
  const { file, skipped } = await loadNewestSnapshot(disk, dir);
  if (file === undefined) return { skipped };
  const frames = readFrames(file);
  const position = decodePosition(frames.next().value as Uint8Array | undefined, file.path);
  return { file, info: { index: file.meta.index, epoch: file.meta.term, position }, frames, skipped };
}

/** Serves this master's newest checkpoint to peers, in pieces. */
export function serveCheckpoints(transport: Transport, newest: () => SnapshotFile | undefined): void {
  transport.handle(fetchMethod, async (body) => {
    const b = body as { index?: unknown; offset?: unknown };
    const file = newest();
    if (file === undefined) throw new CairnError(ErrorCode.Unavailable, 'this master holds no checkpoint yet');
    const offset = typeof b.offset === 'number' && Number.isSafeInteger(b.offset) && b.offset >= 0 ? b.offset : 0;
    // A fetch that began on an older file starts over on the newest.
    if (b.index !== undefined && b.index !== file.meta.index) throw new CairnError(ErrorCode.Unavailable, `checkpoint ${String(b.index)} was replaced by ${file.meta.index}: start over`, { index: file.meta.index });
    if (offset > file.byteLength) throw new CairnError(ErrorCode.InvalidArgument, `offset ${offset} is past the checkpoint's ${file.byteLength} bytes`);
    const length = Math.min(fetchPieceBytes, file.byteLength - offset);
    return reply({ index: file.meta.index, epoch: file.meta.term, bytes: file.byteLength }, file.read(offset, length));
  }, { internal: true });
}

/** Copies a peer's newest checkpoint into `dir` and returns it, loaded. */
export async function fetchCheckpoint(disk: Disk, dir: string, peer: Connection, timeoutMs: number): Promise<{ file: SnapshotFile; info: CheckpointInfo; frames: Iterable<Uint8Array> }> {
  const first = await peer.call<{ index: number; epoch: number; bytes: number }>(fetchMethod, { offset: 0 }, { timeoutMs });
  const { index, epoch, bytes } = first.body;
  const w = await SnapshotWriter.create(disk, dir);
  try {
    w.begin({ index, term: epoch, conf: { voters: [], learners: [] } });
    let piece = first.payload ?? new Uint8Array(0);
    for (let offset = 0; ; ) {
      w.write(piece);
      offset += piece.byteLength;
      if (offset >= bytes) break;
      if (piece.byteLength === 0) throw new CairnError(ErrorCode.Unavailable, `peer sent no bytes of checkpoint ${index} at offset ${offset}`);
      piece = (await peer.call(fetchMethod, { index, offset }, { timeoutMs })).payload ?? new Uint8Array(0);
    }
  } catch (err) {
    await w.abort();
    throw err;
  }
  const file = await w.finish();
  await pruneSnapshots(disk, dir, keepFiles, { temporary: false });
  const frames = readFrames(file);
  const position = decodePosition(frames.next().value as Uint8Array | undefined, file.path);
  return { file, info: { index, epoch, position }, frames };
}
