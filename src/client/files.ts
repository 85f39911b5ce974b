// Whole-file operations over the metadata and data clients: put (written under a temporary name
// and renamed into place, so a reader never sees half a file and a failed put leaves nothing) and
// get (streamed, chunks read ahead).

import { randomBytes } from 'node:crypto';
import type { Caller, CloseSessionValue, CreateValue, InodeAttr, PublishValue, SessionValue } from '../meta/index.ts';
import { CairnError, ErrorCode } from '../errors.ts';
import { indexesIn, inRanges } from '../meta/chunk-ranges.ts';
import { nameBytesMax } from '../meta/paths.ts';
import { FsErrorCode } from '../meta/errors.ts';
import type { DataClient } from './data-client.ts';
import { FileReader, FileWriter, type FileRef } from './file-io.ts';
import type { MasterClient } from './master-client.ts';
import type { MasterCalls } from './master-calls.ts';

export interface PutOptions {
  mode?: number;
  /** The owner; the client's caller by default (only root may name another). */
  uid?: number;
  gid?: number;
  /** Layout fields to use instead of the defaults (chunk size, stripe width). */
  layout?: { chunkSizeBytes?: number; stripeWidth?: number };
  onProgress?: (bytes: number) => void;
  streamBytesMax?: number;
  /** Acts as this caller instead of the client's own (a gateway serving many users). */
  caller?: Caller;
  /**
   * An extended attribute the file takes with its name (the S3 gateway's object metadata), made
   * once the bytes are in: a throw leaves nothing behind.
   */
  xattr?: (written: { sizeBytes: number }) => { name: string; value: Uint8Array };
  /** Take the name only if it is this inode then, 0 only if it is free (else EEXIST or EAGAIN, and nothing is left). */
  replacing?: number;
}

const ownerWrite = 0o200;
const putTempPattern = /^\..*\.cairn-put-[0-9a-f]{12}$/;
/** What a temporary name adds to the name: a leading dot and ".cairn-put-" (or "-get-") with 12 hex digits. */
const tempExtraBytes = 24;

/**
 * A temporary name beside `name` for a transfer (`put` into cairn, `get` to a local disk): it
 * repeats as much of the name as fits in the 255 bytes a name may have.
 */
export function transferTempName(name: string, kind: 'put' | 'get'): string {
  return `.${tempStem(name)}.cairn-${kind}-${randomBytes(6).toString('hex')}`;
}

/** The part of a name its temporary name repeats: all of it, or as much as fits in a name. */
function tempStem(name: string): string {
  const room = nameBytesMax - tempExtraBytes;
  if (Buffer.byteLength(name) <= room) return name;
  let stem = '';
  let bytes = 0;
  for (const ch of name) {
    bytes += Buffer.byteLength(ch);
    if (bytes > room) break;
    stem += ch;
  }
  return stem;
}

/** Whether a name is a put's temporary file (listings of a live tree may skip them). */
export function isPutTempName(name: string): boolean {
  return putTempPattern.test(name);
}

/** What a write session's end commits: the writer's length, and the chunks it touched. */
export interface SessionCommit {
  lengthBytes?: number;
  chunks?: number[] | null;
}

/**
 * Ends a write session, committing what it wrote. The masters end a session whose client did not
 * renew it for a lease (a client cut off from them: src/master/session-leases.ts); its close then
 * answers ENOENT, and what it would have committed is committed on the file by inode instead
 * (ENOENT again if the file is gone). The file's attributes after, or undefined when there was
 * nothing to commit and the session had already ended.
 */
export async function endWriteSession(meta: MasterCalls, sessionId: string, inodeId: number, commit: SessionCommit = {}, as: { caller?: Caller } = {}): Promise<InodeAttr | undefined> {
  try {
    return (await meta.mutate<CloseSessionValue>('meta.mutate', { op: 'closeSession', sessionId, ...commit })).inode;
  } catch (err) {
    if ((err as { code?: string }).code !== FsErrorCode.ENOENT) throw err;
    if (commit.lengthBytes === undefined && commit.chunks === undefined) return undefined;
    // Growth only: a length of 0 commits the chunks and leaves the length as it is.
    return meta.mutate<InodeAttr>('meta.mutate', { op: 'commitLength', inodeId, lengthBytes: commit.lengthBytes ?? 0, ...(commit.chunks === undefined ? {} : { chunks: commit.chunks }), ...as });
  }
}

/** Writes `source` as the file at `path`, replacing any file there at once when complete. */
export async function putFile(meta: MasterClient, data: DataClient, path: string, source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, opts: PutOptions = {}): Promise<InodeAttr> {
  const slash = path.lastIndexOf('/');
  const temp = `${path.slice(0, slash + 1)}${transferTempName(path.slice(slash + 1), 'put')}`;
  const routing = await data.routing();
  const layout = opts.layout === undefined ? undefined : { chainTableId: 1, chainTableVersion: routing.info.tables.find((t) => t.tableId === 1)?.version ?? 0, shuffleSeed: randomBytes(4).readUInt32LE(0), ...opts.layout };
  const mode = opts.mode ?? 0o644;
  const as = opts.caller === undefined ? {} : { caller: opts.caller };
  const owner = opts.caller ?? meta.caller;
  // The writer needs write permission on its own file (open(2) with O_CREAT gets it whatever the
  // mode): a mode without it is set once the data is in.
  const writable = mode | ownerWrite;
  // The file and its write session in one step; should this writer die, the masters remove the
  // temporary file once its session expires (ephemeral).
  const made = await meta.mutate<CreateValue>('meta.mutate', { op: 'create', path: temp, mode: writable, uid: opts.uid ?? owner.uid, gid: opts.gid ?? owner.gid, exclusive: true, openSession: true, ephemeral: true, ...(layout === undefined ? {} : { layout }), ...as });
  let session: SessionValue | undefined = { sessionId: made.sessionId!, inode: made.inode };
  let writer: FileWriter | undefined;
  try {
    const file = fileRef(session.inode, temp);
    writer = new FileWriter(data, file, { streamBytesMax: opts.streamBytesMax });
    let position = 0;
    for await (const buf of source) {
      await writer.write(buf, position);
      position += buf.length;
      opts.onProgress?.(position);
    }
    await writer.flush();
    const xattr = opts.xattr?.({ sizeBytes: writer.highWater });
    // The end in one journal entry (publish): the session closed, the mode and attribute set, the
    // file renamed into place; no death in between can leave a temporary file nothing removes.
    const published = await meta.mutate<PublishValue>('meta.mutate', {
      op: 'publish',
      sessionId: session.sessionId,
      from: temp,
      to: path,
      lengthBytes: writer.highWater,
      chunks: writer.written.toArray(),
      ...(writable !== mode ? { mode } : {}),
      ...(xattr === undefined ? {} : { xattrName: xattr.name, xattrValue: xattr.value }),
      ...(opts.replacing === undefined ? {} : { replacing: opts.replacing }),
      ...as,
    });
    session = undefined;
    return published.inode;
  } catch (err) {
    // Leave nothing behind: the temporary file goes, and its chunks to garbage collection, every
    // one the writer touched (recorded with the session's end: the masters know no others, and
    // would keep what a failed write left on the workers for good).
    if (session !== undefined) {
      await writer?.settled();
      const touched = writer === undefined ? {} : { chunks: writer.written.toArray() };
      await endWriteSession(meta, session.sessionId, session.inode.inodeId, touched, as).catch(() => undefined);
    }
    await meta.mutate('meta.mutate', { op: 'unlink', path: temp, ...as }).catch(() => undefined);
    throw err;
  }
}

/**
 * Sets a file's length. Cutting it first removes the chunks past the new end from the workers and
 * cuts the chunk the end falls in (under a session, so the chunks are not collected meanwhile),
 * then commits the length: old bytes never come back when the file grows again.
 */
export async function truncateFile(meta: MasterClient, data: DataClient, path: string, sizeBytes: number, opts: { caller?: Caller } = {}): Promise<InodeAttr> {
  // As the caller, if given: the masters check its write permission (else the client's caller's).
  const as = opts.caller === undefined ? {} : { caller: opts.caller };
  const session = await meta.mutate<SessionValue>('meta.mutate', { op: 'openSession', path, truncate: false, ...as });
  try {
    const file = fileRef(session.inode, path);
    const old = session.inode.sizeBytes;
    if (sizeBytes < old) {
      const cs = file.layout.chunkSizeBytes;
      const firstWhole = Math.ceil(sizeBytes / cs);
      const written = (index: number): boolean => file.chunks === null || file.chunks === undefined || inRanges(file.chunks, index);
      // Untracked: every chunk the old length reached.
      const recorded = file.chunks ?? [0, Math.ceil(old / cs)];
      await data.removeChunks(file.layout, file.inodeId, indexesIn(recorded, firstWhole));
      const cut = Math.floor(sizeBytes / cs);
      if (sizeBytes % cs !== 0 && written(cut)) await data.truncateChunk(file.layout, file.inodeId, cut, sizeBytes % cs);
    }
    return await meta.mutate<InodeAttr>('meta.mutate', { op: 'setattr', path, sizeBytes, chunksTrimmed: true, ...as });
  } finally {
    await meta.mutate('meta.mutate', { op: 'closeSession', sessionId: session.sessionId }).catch(() => undefined);
  }
}

/** The file at `path` as a stream of buffers, with its attributes; the caller needs read permission. */
export async function getFile(meta: MasterClient, data: DataClient, path: string, opts: { streamBytesMax?: number } = {}): Promise<{ attr: InodeAttr; chunks: AsyncGenerator<Buffer> }> {
  const attr = await meta.query<InodeAttr>('meta.query', { op: 'open', path });
  const reader = new FileReader(data, fileRef(attr, path), attr.sizeBytes, opts);
  return { attr, chunks: reader.stream() };
}

/** What a reader or writer needs of a regular file's attributes; CAIRN_INVALID_ARGUMENT for anything else. */
export function fileRef(attr: InodeAttr, path: string): FileRef {
  if (attr.type !== 'file' || attr.layout === undefined) throw new CairnError(ErrorCode.InvalidArgument, `${path} is not a regular file`);
  return { inodeId: attr.inodeId, layout: attr.layout, chunks: attr.chunks ?? null };
}
