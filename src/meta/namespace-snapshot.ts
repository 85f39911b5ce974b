// Streaming snapshots of the metadata state: a sequence of msgpack chunks of at most
// snapshotChunkBytesMax each, and a reader that rebuilds the tables and refuses anything damaged.
//
// Each chunk is [chunkNo, kind, body bytes, crc32c(body)]; the body is a msgpack header, batch of
// records, or end marker. Kinds come in a fixed order: header, inodes, dentries, sessions, pending
// GC, clients, workers, targets, chains, chain tables, end. Records are tuples to keep chunks small, and
// are written in a canonical order, so equal states give equal bytes (stateHash relies on it).

import { crc32c } from '@node-rs/crc32';
import { assert } from '../errors.ts';
import { dashboardPasswordHashOk, dashboardUserNamePattern, dashboardUsersMax, fileSizeBytesMax, generatedSessionPrefix, idMax, metaPackr, modeMax, s3AccessKeyIdPattern, s3BucketNamePattern, s3SecretKeyPattern, s3UserBucketsMax, s3UsersMax, validateLayout, xattrNameBytesMax, xattrNamePrefix, xattrsBytesMax, xattrValueBytesMax } from './commands.ts';
import type { Layout, TargetState } from './commands.ts';
import { FsErrorCode, MetaError, MetaErrorCode } from './errors.ts';
import { inChainOrder } from './chain-states.ts';
import { rangesProblem } from './chunk-ranges.ts';
import { isDeviceType, isSpecialInodeType, MetaTables, rootInodeId, specialInodeTypes } from './namespace-state.ts';
import type { ChainMove, ClientRecord, Inode, InodeType, MetaResult, MetaStateOptions, Session } from './namespace-state.ts';
import { utf8Bytes } from '../fields.ts';
import { nameProblem } from './paths.ts';
import { holderPattern } from './commands.ts';
import { dirLeasesMax } from './dir-leases.ts';

/**
 * 10: the held directories (leases: dir-leases.ts), in a section of their own after the dashboard's users.
 * 9: session records carry where a temporary file's session made it ([directory inode, name], or
 * null: create's `ephemeral`).
 * 8: target records carry leftChainAt (the routing version at which the target left its chain while
 * what it kept there is not reclaimed, or null).
 * 7: the dashboard's users, in a section of their own.
 * 6: inode records carry extended attributes ([name, value] pairs, or null); the S3 gateways'
 * access keys, in a section of their own before the end.
 * 5: inode records carry a device number (FIFOs, sockets and device nodes are inodes too).
 * 4: chain records carry the move under way ([from, to], or null). 3: worker records carry when the worker was decommissioned (null while in service). 2: chains
 * with their own ids and versions, tables of chain ids (1 held tables of target lists). This build
 * writes 10 and reads 2 to 10.
 */
export const snapshotFormatVersion = 10;
const snapshotFormatVersionsRead: readonly number[] = [2, 3, 4, 5, 6, 7, 8, 9, 10];
export const snapshotChunkBytesMax = 1024 * 1024;
const snapshotMagic = 'cairn-meta';
/** Record sizes are estimated from above; the margin leaves room for the chunk's framing. */
const bodyBudgetBytes = snapshotChunkBytesMax - 16 * 1024;
/** A big chain table is written in parts of this many chains. */
const chainsPerRecord = 1024;

const Kind = {
  Header: 0,
  Inodes: 1,
  Dentries: 2,
  Sessions: 3,
  PendingGc: 4,
  Clients: 5,
  Workers: 6,
  Targets: 7,
  Chains: 8,
  ChainTables: 9,
  End: 10,
  S3Users: 11,
  DashboardUsers: 12,
  DirLeases: 13,
} as const;
type Kind = (typeof Kind)[keyof typeof Kind];
/** The order kinds come in (S3Users and DashboardUsers were added after End's number was taken). */
const kindOrder: readonly Kind[] = [Kind.Header, Kind.Inodes, Kind.Dentries, Kind.Sessions, Kind.PendingGc, Kind.Clients, Kind.Workers, Kind.Targets, Kind.Chains, Kind.ChainTables, Kind.S3Users, Kind.DashboardUsers, Kind.DirLeases, Kind.End];

/** Appended to only: a type's index is what snapshots store. */
const inodeTypes: readonly InodeType[] = ['file', 'dir', 'symlink', ...specialInodeTypes];
const targetStateNames: readonly string[] = ['serving', 'syncing', 'waiting', 'lastsrv', 'offline'];
const fsCodes: readonly string[] = Object.values(FsErrorCode);

interface Header {
  magic: string;
  formatVersion: number;
  indexApplied: number;
  clockMs: number;
  nextInodeId: number;
  nextSessionNo: number;
  clusterId: string;
  routingVersion: number;
  options: MetaStateOptions;
  counts: Counts;
}

interface Counts {
  inodes: number;
  dentries: number;
  sessions: number;
  pendingGc: number;
  clients: number;
  workers: number;
  targets: number;
  chains: number;
  chainTables: number;
  s3Users: number;
  dashboardUsers: number;
  dirLeases: number;
}

function countsOf(t: MetaTables): Counts {
  return {
    inodes: t.inodes.size,
    dentries: t.dentries,
    sessions: t.sessions.size,
    dirLeases: t.dirLeases.size,
    pendingGc: t.pendingGc.size,
    clients: t.clients.size,
    workers: t.workers.size,
    targets: t.targets.size,
    chains: t.chains.size,
    chainTables: t.chainTables.size,
    s3Users: t.s3Users.size,
    dashboardUsers: t.dashboardUsers.size,
  };
}

// ---------------------------------------------------------------------------------------------
// Writing

/** An upper bound on the msgpack size of a value. */
function estimateBytes(v: unknown): number {
  if (typeof v === 'string') return 5 + 3 * v.length;
  if (Array.isArray(v)) {
    let n = 5;
    for (const x of v) n += estimateBytes(x);
    return n;
  }
  if (v instanceof Uint8Array) return 5 + v.length;
  if (typeof v === 'object' && v !== null) {
    let n = 5;
    for (const [k, x] of Object.entries(v)) n += estimateBytes(k) + estimateBytes(x);
    return n;
  }
  return 9;
}

function layoutTuple(l: Layout): number[] {
  return [l.chunkSizeBytes, l.stripeWidth, l.chainTableId, l.chainTableVersion, l.shuffleSeed];
}

function* inodeRecords(t: MetaTables): Generator<unknown[]> {
  let prev = 0;
  for (const i of t.inodes.values()) {
    assert(i.id > prev, `inode map out of id order at ${i.id}`);
    prev = i.id;
    const layout = i.layout === null ? null : layoutTuple(i.layout);
    const xattrs = i.xattrs === null ? null : [...i.xattrs].sort(([a], [b]) => (a < b ? -1 : 1));
    yield [i.id, inodeTypes.indexOf(i.type), i.mode, i.uid, i.gid, i.nlink, i.sizeBytes, i.atimeMs, i.mtimeMs, i.ctimeMs, i.parentId, layout, i.target, i.chunks, i.rdev, xattrs];
  }
}

/** The names of a directory in readdir order, building the cache if it went stale. */
export function sortedNamesOf(dir: Inode): string[] {
  assert(dir.children !== null, `inode ${dir.id} is not a directory`);
  if (dir.sortedNames === null) dir.sortedNames = [...dir.children.keys()].sort();
  return dir.sortedNames;
}

function* dentryRecords(t: MetaTables): Generator<unknown[]> {
  for (const dir of t.inodes.values()) {
    if (dir.children === null) continue;
    for (const name of sortedNamesOf(dir)) yield [dir.id, name, dir.children.get(name)];
  }
}

/** A table in parts: each carries up to chainsPerRecord of its chain ids and of its per-version counts. */
function* chainTableRecords(t: MetaTables): Generator<unknown[]> {
  for (const table of [...t.chainTables.values()].sort((a, b) => a.tableId - b.tableId)) {
    const slice = (xs: readonly number[], first: number): number[] => xs.slice(first, first + chainsPerRecord);
    for (let first = 0; first === 0 || first < table.chainIds.length; first += chainsPerRecord) {
      yield [table.tableId, table.version, table.publishedMs, first, table.chainIds.length, slice(table.chainIds, first), slice(table.chainCounts, first)];
    }
  }
}

function* sections(t: MetaTables): Generator<[Kind, Iterable<unknown[]>]> {
  yield [Kind.Inodes, inodeRecords(t)];
  yield [Kind.Dentries, dentryRecords(t)];
  yield [Kind.Sessions, [...t.sessions.values()].map((s) => [s.sessionId, s.inodeId, s.clientId, s.openedMs, s.ephemeral === undefined ? null : [s.ephemeral.parentId, s.ephemeral.name]])];
  yield [Kind.PendingGc, [...t.pendingGc.values()].map((g) => [g.inodeId, layoutTuple(g.layout), g.chunks, g.sizeBytes, g.deletedMs])];
  yield [Kind.Clients, [...t.clients].map(([id, c]) => [id, c.seq, c.lastUsedMs, c.result])];
  const workers = [...t.workers.values()].sort((a, b) => a.workerId - b.workerId);
  yield [Kind.Workers, workers.map((w) => [w.workerId, w.instance, w.address, w.domain, w.registeredMs, w.updatedMs, w.targetIds, w.decommissionedMs ?? null])];
  const targets = [...t.targets.values()].sort((a, b) => a.targetId - b.targetId);
  yield [Kind.Targets, targets.map((x) => [x.targetId, x.workerId, x.path, x.capacityBytes, x.state, x.chainId, x.leftChainAt ?? null])];
  const chains = [...t.chains.values()].sort((a, b) => a.chainId - b.chainId);
  yield [Kind.Chains, chains.map((c) => [c.chainId, c.version, c.targetIds, c.moving === undefined ? null : [c.moving.fromTargetId, c.moving.toTargetId]])];
  yield [Kind.ChainTables, chainTableRecords(t)];
  const users = [...t.s3Users.values()].sort((a, b) => (a.accessKeyId < b.accessKeyId ? -1 : 1));
  yield [Kind.S3Users, users.map((u) => [u.accessKeyId, u.secretKey, u.buckets, u.uid, u.gid, u.createdMs])];
  const logins = [...t.dashboardUsers.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  yield [Kind.DashboardUsers, logins.map((u) => [u.name, u.passwordHash, u.uid, u.gid, u.createdMs])];
  const leases = [...t.dirLeases.values()].sort((a, b) => a.dirInodeId - b.dirInodeId);
  yield [Kind.DirLeases, leases.map((l) => [l.dirInodeId, l.holder, l.clientId, l.grantedMs, l.idNext, l.idEnd])];
}

/** Batches records into bodies whose estimated size stays within the budget. */
function* batches(records: Iterable<unknown[]>): Generator<unknown[][]> {
  let batch: unknown[][] = [];
  let bytes = 5;
  for (const record of records) {
    const size = estimateBytes(record);
    assert(size <= bodyBudgetBytes, `a snapshot record of ${size} bytes does not fit a chunk`);
    if (bytes + size > bodyBudgetBytes && batch.length > 0) {
      yield batch;
      batch = [];
      bytes = 5;
    }
    batch.push(record);
    bytes += size;
  }
  if (batch.length > 0) yield batch;
}

/**
 * The state as chunks. The iterable reads the live tables: consume it before the next apply (it
 * throws if the state changed under it).
 */
export function* writeSnapshot(t: MetaTables): Generator<Uint8Array> {
  const indexApplied = t.indexApplied;
  let chunkNo = 0;
  const chunk = (kind: Kind, body: unknown): Uint8Array => {
    const bytes = metaPackr.pack(body);
    const out = metaPackr.pack([chunkNo++, kind, bytes, crc32c(bytes)]);
    assert(out.length <= snapshotChunkBytesMax, `snapshot chunk of ${out.length} bytes exceeds ${snapshotChunkBytesMax}`);
    return out;
  };
  const header: Header = {
    magic: snapshotMagic,
    formatVersion: snapshotFormatVersion,
    indexApplied,
    clockMs: t.clockMs,
    nextInodeId: t.nextInodeId,
    nextSessionNo: t.nextSessionNo,
    clusterId: t.clusterId,
    routingVersion: t.routingVersion,
    options: { ...t.options },
    counts: countsOf(t),
  };
  yield chunk(Kind.Header, header);
  for (const [kind, records] of sections(t)) {
    for (const batch of batches(records)) {
      assert(t.indexApplied === indexApplied, 'the state changed while its snapshot was being read');
      yield chunk(kind, batch);
    }
  }
  assert(t.indexApplied === indexApplied, 'the state changed while its snapshot was being read');
  yield chunk(Kind.End, { chunks: chunkNo });
}

// ---------------------------------------------------------------------------------------------
// Reading

function corrupt(message: string): MetaError {
  return new MetaError(MetaErrorCode.SnapshotCorrupt, `corrupt metadata snapshot: ${message}`);
}

function check(condition: boolean, message: string): asserts condition {
  if (!condition) throw corrupt(message);
}

function tuple(v: unknown, length: number, what: string): unknown[] {
  check(Array.isArray(v) && v.length === length, `${what} is not a ${length}-tuple`);
  return v;
}

function int(v: unknown, what: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  check(typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max, `${what} is not an integer in [${min}, ${max}]`);
  return v;
}

function time(v: unknown, what: string): number {
  return int(v, what, Number.MIN_SAFE_INTEGER);
}

function str(v: unknown, what: string): string {
  check(typeof v === 'string' && v.length > 0, `${what} is not a non-empty string`);
  return v;
}

function obj(v: unknown, what: string): Record<string, unknown> {
  check(typeof v === 'object' && v !== null && !Array.isArray(v), `${what} is not a map`);
  return v as Record<string, unknown>;
}

function chunksOf(v: unknown, what: string): number[] | null {
  if (v === null) return null;
  check(Array.isArray(v), `${what} is not a list`);
  const problem = rangesProblem(v);
  check(problem === undefined, `${what}: ${problem}`);
  return v as number[];
}

function xattrsFrom(v: unknown, what: string): Map<string, Uint8Array> | null {
  if (v === null) return null;
  check(Array.isArray(v) && v.length > 0, `${what} are not a non-empty list`);
  const out = new Map<string, Uint8Array>();
  let last = '';
  let bytes = 0;
  for (const pair of v) {
    const [name, value] = tuple(pair, 2, `${what} entry`);
    check(typeof name === 'string' && name.startsWith(xattrNamePrefix) && name.length > xattrNamePrefix.length && utf8Bytes(name) <= xattrNameBytesMax && !name.includes('\0'), `${what}: a bad name`);
    check(name > last, `${what} are out of order or repeated`);
    last = name;
    check(value instanceof Uint8Array && value.length <= xattrValueBytesMax, `${what}: '${name}' has no value or a value too large`);
    bytes += name.length + value.length;
    out.set(name, value);
  }
  check(bytes <= xattrsBytesMax, `${what} hold ${bytes} bytes, more than ${xattrsBytesMax}`);
  return out;
}

function layoutFrom(v: unknown, what: string): Layout {
  const [chunkSizeBytes, stripeWidth, chainTableId, chainTableVersion, shuffleSeed] = tuple(v, 5, what);
  try {
    return validateLayout({ chunkSizeBytes, stripeWidth, chainTableId, chainTableVersion, shuffleSeed }, what);
  } catch (err) {
    throw corrupt((err as Error).message);
  }
}

function clusterIdOf(v: unknown): string {
  check(typeof v === 'string', 'the cluster id is not a string');
  return v;
}

function readHeader(body: unknown): Header {
  const h = obj(body, 'header');
  check(h.magic === snapshotMagic, `not a metadata snapshot (magic ${String(h.magic)})`);
  check(typeof h.formatVersion === 'number' && snapshotFormatVersionsRead.includes(h.formatVersion), `format version ${String(h.formatVersion)}, this build reads ${snapshotFormatVersionsRead.join(', ')}`);
  const o = obj(h.options, 'header options');
  const c = obj(h.counts, 'header counts');
  const counts = {} as Counts;
  for (const key of ['inodes', 'dentries', 'sessions', 'pendingGc', 'clients', 'workers', 'targets', 'chains', 'chainTables'] as const) {
    counts[key] = int(c[key], `header count ${key}`);
  }
  counts.s3Users = (h.formatVersion as number) < 6 ? 0 : int(c.s3Users, 'header count s3Users');
  counts.dashboardUsers = (h.formatVersion as number) < 7 ? 0 : int(c.dashboardUsers, 'header count dashboardUsers');
  counts.dirLeases = (h.formatVersion as number) < 10 ? 0 : int(c.dirLeases, 'header count dirLeases');
  return {
    magic: snapshotMagic,
    formatVersion: h.formatVersion as number,
    indexApplied: int(h.indexApplied, 'indexApplied'),
    clockMs: int(h.clockMs, 'clockMs'),
    nextInodeId: int(h.nextInodeId, 'nextInodeId', rootInodeId + 1),
    nextSessionNo: int(h.nextSessionNo, 'nextSessionNo', 1),
    clusterId: clusterIdOf(h.clusterId),
    routingVersion: int(h.routingVersion, 'routingVersion'),
    options: {
      clientIdleMsMax: int(o.clientIdleMsMax, 'clientIdleMsMax'),
      clientsMax: int(o.clientsMax, 'clientsMax', 1),
      sessionsMax: int(o.sessionsMax, 'sessionsMax', 1),
    },
    counts,
  };
}

/** Rebuilds the tables record by record; `finish` checks what spans records. */
class SnapshotBuilder {
  readonly t: MetaTables;
  readonly header: Header;
  private lastInodeId = 0;
  private lastDentry: [number, string] = [0, ''];
  private lastClientUsedMs = 0;
  private lastS3User = '';
  private lastDashboardUser = '';
  private lastDirLease = 0;
  /** Dentries naming each inode. */
  private readonly links = new Map<number, number>();
  private tableParts = new Map<number, { version: number; total: number; chainIds: number[]; chainCounts: number[] }>();

  constructor(header: Header) {
    this.header = header;
    this.t = new MetaTables(header.options);
    this.t.indexApplied = header.indexApplied;
    this.t.clockMs = header.clockMs;
    this.t.nextInodeId = header.nextInodeId;
    this.t.nextSessionNo = header.nextSessionNo;
    this.t.routingVersion = header.routingVersion;
    this.t.clusterId = header.clusterId;
  }

  add(kind: Kind, records: unknown[]): void {
    for (const r of records) {
      if (kind === Kind.Inodes) this.inode(r);
      else if (kind === Kind.Dentries) this.dentry(r);
      else if (kind === Kind.Sessions) this.session(r);
      else if (kind === Kind.PendingGc) this.gcEntry(r);
      else if (kind === Kind.Clients) this.client(r);
      else if (kind === Kind.Workers) this.worker(r);
      else if (kind === Kind.Targets) this.target(r);
      else if (kind === Kind.Chains) this.chain(r);
      else if (kind === Kind.ChainTables) this.chainTablePart(r);
      else if (kind === Kind.S3Users && this.header.formatVersion >= 6) this.s3User(r);
      else if (kind === Kind.DashboardUsers && this.header.formatVersion >= 7) this.dashboardUser(r);
      else if (kind === Kind.DirLeases && this.header.formatVersion >= 10) this.dirLease(r);
      else throw corrupt(`records in a chunk of kind ${kind}`);
    }
  }

  private inode(r: unknown): void {
    const v5 = this.header.formatVersion >= 5;
    const v6 = this.header.formatVersion >= 6;
    const [idRaw, typeRaw, mode, uid, gid, nlink, size, atime, mtime, ctime, parentRaw, layoutRaw, targetRaw, chunksRaw, rdevRaw, xattrsRaw] = tuple(r, v6 ? 16 : v5 ? 15 : 14, 'inode record');
    const id = int(idRaw, 'inode id', 1, this.t.nextInodeId - 1);
    const what = `inode ${id}`;
    check(id > this.lastInodeId, `${what} is out of order or repeated`);
    this.lastInodeId = id;
    const type = inodeTypes[int(typeRaw, `${what} type`, 0, v5 ? inodeTypes.length - 1 : 2)];
    const inode: Inode = {
      id,
      type,
      mode: int(mode, `${what} mode`, 0, modeMax),
      uid: int(uid, `${what} uid`, 0, idMax),
      gid: int(gid, `${what} gid`, 0, idMax),
      nlink: int(nlink, `${what} nlink`),
      sizeBytes: int(size, `${what} size`, 0, fileSizeBytesMax),
      atimeMs: time(atime, `${what} atime`),
      mtimeMs: time(mtime, `${what} mtime`),
      ctimeMs: time(ctime, `${what} ctime`),
      parentId: int(parentRaw, `${what} parent`),
      layout: layoutRaw === null ? null : layoutFrom(layoutRaw, `${what} layout`),
      target: targetRaw === null ? null : str(targetRaw, `${what} target`),
      chunks: chunksOf(chunksRaw, `${what} chunks`),
      rdev: v5 ? int(rdevRaw, `${what} rdev`, 0, idMax) : 0,
      children: type === 'dir' ? new Map() : null,
      sortedNames: type === 'dir' ? [] : null,
      xattrs: v6 ? xattrsFrom(xattrsRaw, `${what} extended attributes`) : null,
    };
    check(inode.xattrs === null || type === 'file' || type === 'dir', `${what}: a ${type} with extended attributes`);
    check((inode.layout !== null) === (type === 'file'), `${what}: a ${type} ${inode.layout === null ? 'without' : 'with'} a layout`);
    check((inode.target !== null) === (type === 'symlink'), `${what}: a ${type} ${inode.target === null ? 'without' : 'with'} a target`);
    check((inode.parentId !== 0) === (type === 'dir'), `${what}: a ${type} with parent ${inode.parentId}`);
    check(type === 'file' || inode.chunks === null, `${what}: a ${type} with chunks`);
    if (type === 'dir') check(inode.sizeBytes === 0, `${what}: a directory of size ${inode.sizeBytes}`);
    check(inode.rdev === 0 || isDeviceType(type), `${what}: a ${type} with a device number`);
    if (isSpecialInodeType(type)) check(inode.sizeBytes === 0, `${what}: a ${type} of size ${inode.sizeBytes}`);
    if (inode.target !== null) check(inode.sizeBytes === utf8Bytes(inode.target), `${what}: size does not match its target`);
    this.t.inodes.set(id, inode);
    if (type === 'file') {
      this.t.files++;
      this.t.logicalBytes += inode.sizeBytes;
    } else if (type === 'dir') this.t.dirs++;
    else if (type === 'symlink') this.t.symlinks++;
  }

  private dentry(r: unknown): void {
    const [parentRaw, nameRaw, childRaw] = tuple(r, 3, 'dentry record');
    const parentId = int(parentRaw, 'dentry parent');
    const name = str(nameRaw, `dentry name in directory ${parentId}`);
    const what = `dentry ${parentId}/'${name}'`;
    const [lastParent, lastName] = this.lastDentry;
    check(parentId > lastParent || (parentId === lastParent && name > lastName), `${what} is out of order or repeated`);
    this.lastDentry = [parentId, name];
    const problem = nameProblem(name);
    check(problem === undefined, `${what}: ${problem?.message}`);
    const parent = this.t.inodes.get(parentId);
    check(parent !== undefined && parent.children !== null && parent.sortedNames !== null, `${what}: the parent is not a directory`);
    const childId = int(childRaw, `${what} inode`);
    const child = this.t.inodes.get(childId);
    check(child !== undefined, `${what} points to missing inode ${childId}`);
    check(childId !== rootInodeId, `${what} points to the root`);
    if (child.type === 'dir') check(child.parentId === parentId, `${what}: directory ${childId} has parent ${child.parentId}`);
    parent.children.set(name, childId);
    parent.sortedNames.push(name);
    this.links.set(childId, (this.links.get(childId) ?? 0) + 1);
    this.t.dentries++;
  }

  private session(r: unknown): void {
    // Format 9 added where a temporary file's session made it (null for others).
    const [idRaw, inodeRaw, clientRaw, openedRaw, ephemeralRaw] = tuple(r, this.header.formatVersion < 9 ? 4 : 5, 'session record');
    const sessionId = str(idRaw, 'session id');
    check(!this.t.sessions.has(sessionId), `session '${sessionId}' is repeated`);
    if (sessionId.startsWith(generatedSessionPrefix)) {
      const n = Number(sessionId.slice(generatedSessionPrefix.length));
      check(Number.isSafeInteger(n) && n >= 1 && n < this.t.nextSessionNo, `session '${sessionId}' is not below the session counter ${this.t.nextSessionNo}`);
    }
    const inodeId = int(inodeRaw, `session '${sessionId}' inode`);
    check(this.t.inodes.get(inodeId)?.type === 'file', `session '${sessionId}' holds ${inodeId}, not a file`);
    const session: Session = { sessionId, inodeId, clientId: str(clientRaw, `session '${sessionId}' client`), openedMs: time(openedRaw, `session '${sessionId}' opened`) };
    if (ephemeralRaw !== undefined && ephemeralRaw !== null) {
      const [parentRaw, nameRaw] = tuple(ephemeralRaw, 2, `session '${sessionId}' temporary file`);
      session.ephemeral = { parentId: int(parentRaw, `session '${sessionId}' temporary file's directory`, 1), name: str(nameRaw, `session '${sessionId}' temporary file's name`) };
    }
    this.t.sessions.set(sessionId, session);
    this.t.sessionsByInode.set(inodeId, (this.t.sessionsByInode.get(inodeId) ?? 0) + 1);
  }

  private gcEntry(r: unknown): void {
    const [idRaw, layoutRaw, chunksRaw, sizeRaw, deletedRaw] = tuple(r, 5, 'pending GC record');
    const inodeId = int(idRaw, 'pending GC inode', 2, this.t.nextInodeId - 1);
    check(!this.t.inodes.has(inodeId) && !this.t.pendingGc.has(inodeId), `pending GC inode ${inodeId} is live or repeated`);
    const entry = {
      inodeId,
      layout: layoutFrom(layoutRaw, `pending GC inode ${inodeId} layout`),
      chunks: chunksOf(chunksRaw, `pending GC inode ${inodeId} chunks`),
      sizeBytes: int(sizeRaw, `pending GC inode ${inodeId} size`, 0, fileSizeBytesMax),
      deletedMs: time(deletedRaw, `pending GC inode ${inodeId} time`),
    };
    this.t.pendingGc.set(inodeId, entry);
  }

  private client(r: unknown): void {
    const [idRaw, seqRaw, usedRaw, result] = tuple(r, 4, 'client record');
    const clientId = str(idRaw, 'client id');
    check(!this.t.clients.has(clientId), `client '${clientId}' is repeated`);
    const lastUsedMs = int(usedRaw, `client '${clientId}' last use`, 0, this.t.clockMs);
    check(lastUsedMs >= this.lastClientUsedMs, `client '${clientId}' is out of least-recently-used order`);
    this.lastClientUsedMs = lastUsedMs;
    const record: ClientRecord = { seq: int(seqRaw, `client '${clientId}' seq`, 1), result: resultFrom(result, clientId), lastUsedMs };
    this.t.clients.set(clientId, record);
  }

  private worker(r: unknown): void {
    const [idRaw, instanceRaw, addressRaw, domainRaw, registeredRaw, updatedRaw, targetsRaw, decommissionedRaw] = tuple(r, this.header.formatVersion === 2 ? 7 : 8, 'worker record');
    const workerId = int(idRaw, 'worker id', 1, idMax);
    check(!this.t.workers.has(workerId), `worker ${workerId} is repeated`);
    check(Array.isArray(targetsRaw), `worker ${workerId} targets are not a list`);
    check(typeof domainRaw === 'string', `worker ${workerId} domain is not a string`);
    this.t.workers.set(workerId, {
      workerId,
      instance: str(instanceRaw, `worker ${workerId} instance`),
      address: str(addressRaw, `worker ${workerId} address`),
      domain: domainRaw,
      registeredMs: time(registeredRaw, `worker ${workerId} registered`),
      updatedMs: time(updatedRaw, `worker ${workerId} updated`),
      targetIds: targetsRaw.map((x) => int(x, `worker ${workerId} target`, 1, idMax)),
      ...(decommissionedRaw === undefined || decommissionedRaw === null ? {} : { decommissionedMs: time(decommissionedRaw, `worker ${workerId} decommissioned`) }),
    });
  }

  private target(r: unknown): void {
    const [idRaw, workerRaw, pathRaw, capacityRaw, stateRaw, chainRaw, leftRaw] = tuple(r, this.header.formatVersion < 8 ? 6 : 7, 'target record');
    const targetId = int(idRaw, 'target id', 1, idMax);
    check(!this.t.targets.has(targetId), `target ${targetId} is repeated`);
    const workerId = int(workerRaw, `target ${targetId} worker`, 1, idMax);
    check(this.t.workers.get(workerId)?.targetIds.includes(targetId) === true, `target ${targetId}: worker ${workerId} does not list it`);
    check(typeof stateRaw === 'string' && targetStateNames.includes(stateRaw), `target ${targetId} state ${String(stateRaw)}`);
    const chainId = int(chainRaw, `target ${targetId} chain`, 0, idMax);
    const left = leftRaw === undefined || leftRaw === null ? undefined : int(leftRaw, `target ${targetId} leftChainAt`, 1, Number.MAX_SAFE_INTEGER);
    check(left === undefined || chainId === 0, `target ${targetId} is in chain ${chainId} and has left one`);
    this.t.targets.set(targetId, {
      targetId,
      workerId,
      path: str(pathRaw, `target ${targetId} path`),
      capacityBytes: int(capacityRaw, `target ${targetId} capacity`),
      state: stateRaw as TargetState,
      chainId,
      ...(left === undefined ? {} : { leftChainAt: left }),
    });
  }

  private chain(r: unknown): void {
    const [idRaw, versionRaw, targetsRaw, movingRaw] = tuple(r, this.header.formatVersion < 4 ? 3 : 4, 'chain record');
    const chainId = int(idRaw, 'chain id', 1, idMax);
    const what = `chain ${chainId}`;
    check(!this.t.chains.has(chainId), `${what} is repeated`);
    check(Array.isArray(targetsRaw) && targetsRaw.length > 0, `${what} has no list of targets`);
    const workers = new Set<number>();
    const targetIds = targetsRaw.map((x) => {
      const targetId = int(x, `${what} target`, 1, idMax);
      const target = this.t.targets.get(targetId);
      check(target !== undefined && target.chainId === chainId, `${what} names target ${targetId}, which is not in it`);
      check(!workers.has(target.workerId), `${what} has two targets on worker ${target.workerId}`);
      workers.add(target.workerId);
      return { targetId, state: target.state };
    });
    check(inChainOrder(targetIds), `${what} is not ordered by state`);
    let moving: ChainMove | undefined;
    if (movingRaw !== undefined && movingRaw !== null) {
      const [fromRaw, toRaw] = tuple(movingRaw, 2, `${what} move`);
      moving = { fromTargetId: int(fromRaw, `${what} move source`, 1, idMax), toTargetId: int(toRaw, `${what} move destination`, 1, idMax) };
      const ids = targetIds.map((m) => m.targetId);
      check(moving.fromTargetId !== moving.toTargetId && ids.includes(moving.fromTargetId) && ids.includes(moving.toTargetId), `${what} moves target ${moving.fromTargetId} to ${moving.toTargetId}, which are not two of its members`);
    }
    this.t.chains.set(chainId, Object.freeze({ chainId, version: int(versionRaw, `${what} version`, 1), targetIds: Object.freeze(targetIds.map((m) => m.targetId)), ...(moving === undefined ? {} : { moving: Object.freeze(moving) }) }));
  }

  private chainTablePart(r: unknown): void {
    const [idRaw, versionRaw, publishedRaw, firstRaw, totalRaw, chainIdsRaw, countsRaw] = tuple(r, 7, 'chain table record');
    const tableId = int(idRaw, 'chain table id', 1, idMax);
    const what = `chain table ${tableId}`;
    const version = int(versionRaw, `${what} version`, 1, idMax);
    const total = int(totalRaw, `${what} chain count`);
    const first = int(firstRaw, `${what} part`);
    check(Array.isArray(chainIdsRaw) && Array.isArray(countsRaw), `${what} part is not two lists`);
    const chainIds = chainIdsRaw.map((x) => {
      const chainId = int(x, `${what} chain`, 1, idMax);
      check(this.t.chains.has(chainId), `${what} names missing chain ${chainId}`);
      return chainId;
    });
    const counts = countsRaw.map((x) => int(x, `${what} chain count of a version`, 1, total));
    let part = this.tableParts.get(tableId);
    if (first === 0) {
      check(part === undefined && !this.t.chainTables.has(tableId), `${what} is repeated`);
      part = { version, total, chainIds: [], chainCounts: [] };
      this.tableParts.set(tableId, part);
    }
    check(part !== undefined && part.version === version && part.total === total && part.chainIds.length === first, `${what} part at ${first} does not continue it`);
    part.chainIds.push(...chainIds);
    part.chainCounts.push(...counts);
    check(part.chainIds.length <= total, `${what} has more than ${total} chains`);
    if (part.chainIds.length === total) {
      this.tableParts.delete(tableId);
      const c = part.chainCounts;
      check(c.length === version && c[c.length - 1] === total && c.every((n, i) => i === 0 || n > c[i - 1]), `${what} has inconsistent per-version chain counts`);
      check(new Set(part.chainIds).size === total, `${what} lists a chain twice`);
      this.t.chainTables.set(
        tableId,
        Object.freeze({ tableId, version, chainIds: Object.freeze(part.chainIds), chainCounts: Object.freeze(c), publishedMs: time(publishedRaw, `${what} published`) }),
      );
    }
  }

  private s3User(r: unknown): void {
    const [idRaw, secretRaw, bucketsRaw, uidRaw, gidRaw, createdRaw] = tuple(r, 6, 'S3 user record');
    check(typeof idRaw === 'string' && s3AccessKeyIdPattern.test(idRaw), 'an S3 user record has an invalid access key id');
    const what = `S3 user '${idRaw}'`;
    check(idRaw > this.lastS3User, `${what} is out of order or repeated`);
    this.lastS3User = idRaw;
    check(typeof secretRaw === 'string' && s3SecretKeyPattern.test(secretRaw), `${what} has an invalid secret`);
    check(Array.isArray(bucketsRaw) && bucketsRaw.length >= 1 && bucketsRaw.length <= s3UserBucketsMax, `${what} has an invalid bucket list`);
    const buckets = bucketsRaw.map((b) => {
      check(typeof b === 'string' && (b === '*' || s3BucketNamePattern.test(b)), `${what} has an invalid bucket name`);
      return b;
    });
    check(this.t.s3Users.size < s3UsersMax, 'more S3 users than the masters keep');
    this.t.s3Users.set(idRaw, { accessKeyId: idRaw, secretKey: secretRaw, buckets, uid: int(uidRaw, `${what} uid`, 0, idMax), gid: int(gidRaw, `${what} gid`, 0, idMax), createdMs: time(createdRaw, `${what} created`) });
  }

  private dashboardUser(r: unknown): void {
    const [nameRaw, hashRaw, uidRaw, gidRaw, createdRaw] = tuple(r, 5, 'dashboard user record');
    check(typeof nameRaw === 'string' && dashboardUserNamePattern.test(nameRaw), 'a dashboard user record has an invalid name');
    const what = `dashboard user '${nameRaw}'`;
    check(nameRaw > this.lastDashboardUser, `${what} is out of order or repeated`);
    this.lastDashboardUser = nameRaw;
    check(typeof hashRaw === 'string' && dashboardPasswordHashOk(hashRaw), `${what} has an invalid password hash`);
    check(this.t.dashboardUsers.size < dashboardUsersMax, 'more dashboard users than the masters keep');
    this.t.dashboardUsers.set(nameRaw, { name: nameRaw, passwordHash: hashRaw, uid: int(uidRaw, `${what} uid`, 0, idMax), gid: int(gidRaw, `${what} gid`, 0, idMax), createdMs: time(createdRaw, `${what} created`) });
  }

  private dirLease(r: unknown): void {
    const [dirRaw, holderRaw, clientRaw, grantedRaw, nextRaw, endRaw] = tuple(r, 6, 'directory lease record');
    const dirInodeId = int(dirRaw, 'a directory lease\'s directory', 1);
    const what = `the lease of directory ${dirInodeId}`;
    check(dirInodeId > this.lastDirLease, `${what} is out of order or repeated`);
    this.lastDirLease = dirInodeId;
    check(this.t.inodes.get(dirInodeId)?.type === 'dir', `${what}: no such directory`);
    check(typeof holderRaw === 'string' && holderPattern.test(holderRaw), `${what} has an invalid holder`);
    check(this.t.dirLeases.size < dirLeasesMax, 'more directory leases than the masters keep');
    const idNext = int(nextRaw, `${what} next inode id`, 1);
    const idEnd = int(endRaw, `${what} inode id range end`, idNext);
    check(idEnd <= this.t.nextInodeId, `${what} reserves inode ids past the next inode id`);
    this.t.dirLeases.set(dirInodeId, { dirInodeId, holder: holderRaw, clientId: str(clientRaw, `${what} client`), grantedMs: time(grantedRaw, `${what} granted`), idNext, idEnd });
  }

  /** Checks what no single record shows: link counts, reachability, sessions, counts. */
  finish(): MetaTables {
    const t = this.t;
    const root = t.inodes.get(rootInodeId);
    check(root !== undefined && root.type === 'dir' && root.parentId === rootInodeId, 'the root is missing or not a directory');
    check(this.tableParts.size === 0, 'a chain table is incomplete');
    for (const inode of t.inodes.values()) this.checkLinks(inode);
    // Each directory has one dentry that matches its parent pointer; reaching all of them from
    // the root then rules out detached cycles, and every linked file lives in one of them.
    let reached = 0;
    const queue = [root];
    while (queue.length > 0) {
      const dir = queue.pop() as Inode;
      check(++reached <= t.dirs, 'the directory tree has a cycle');
      for (const id of (dir.children as Map<string, number>).values()) {
        const child = t.inodes.get(id) as Inode;
        if (child.type === 'dir') queue.push(child);
      }
    }
    check(reached === t.dirs, `${t.dirs - reached} directories are not reachable from the root`);
    for (const worker of t.workers.values()) {
      for (const id of worker.targetIds) check(t.targets.get(id)?.workerId === worker.workerId, `worker ${worker.workerId} lists target ${id} it does not own`);
    }
    for (const target of t.targets.values()) {
      if (target.chainId !== 0) check(t.chains.get(target.chainId)?.targetIds.includes(target.targetId) === true, `target ${target.targetId} is not in its chain ${target.chainId}`);
    }
    check(t.sessions.size <= t.options.sessionsMax && t.clients.size <= t.options.clientsMax, 'a table exceeds its limit');
    const counts = countsOf(t);
    for (const key of Object.keys(counts) as (keyof Counts)[]) {
      check(counts[key] === this.header.counts[key], `the header counts ${this.header.counts[key]} ${key}, the chunks hold ${counts[key]}`);
    }
    return t;
  }

  private checkLinks(inode: Inode): void {
    const t = this.t;
    const links = this.links.get(inode.id) ?? 0;
    if (inode.children !== null) {
      let subdirs = 0;
      for (const id of inode.children.values()) if (t.inodes.get(id)?.type === 'dir') subdirs++;
      check(inode.nlink === 2 + subdirs, `directory ${inode.id} has nlink ${inode.nlink}, expected ${2 + subdirs}`);
      check(links === (inode.id === rootInodeId ? 0 : 1), `directory ${inode.id} has ${links} dentries`);
      return;
    }
    if (inode.nlink === 0) {
      check(inode.type === 'file' && links === 0 && (t.sessionsByInode.get(inode.id) ?? 0) > 0, `inode ${inode.id} has nlink 0 but is not an open file`);
      t.orphans.add(inode.id);
      return;
    }
    check(links === inode.nlink, `inode ${inode.id} has nlink ${inode.nlink} but ${links} dentries`);
  }
}

function resultFrom(v: unknown, clientId: string): MetaResult {
  const r = obj(v, `client '${clientId}' result`);
  if (r.ok === true) {
    check('value' in r, `client '${clientId}' result has no value`);
  } else {
    check(r.ok === false && typeof r.code === 'string' && fsCodes.includes(r.code) && typeof r.message === 'string', `client '${clientId}' result is malformed`);
  }
  return r as unknown as MetaResult;
}

function unpackChunk(chunk: Uint8Array, chunkNo: number): [Kind, unknown] {
  check(chunk.length <= snapshotChunkBytesMax, `chunk ${chunkNo} has ${chunk.length} bytes, more than ${snapshotChunkBytesMax}`);
  let outer: unknown;
  try {
    outer = metaPackr.unpack(chunk);
  } catch (err) {
    throw corrupt(`chunk ${chunkNo} is not msgpack: ${(err as Error).message}`);
  }
  const [no, kind, body, crc] = tuple(outer, 4, `chunk ${chunkNo}`);
  check(no === chunkNo, `chunk ${chunkNo} is numbered ${String(no)} (missing or reordered chunks)`);
  check(typeof kind === 'number' && kindOrder.includes(kind as Kind), `chunk ${chunkNo} has unknown kind ${String(kind)}`);
  check(body instanceof Uint8Array, `chunk ${chunkNo} has no body`);
  check(crc32c(body) === crc, `chunk ${chunkNo} fails its checksum`);
  try {
    return [kind as Kind, metaPackr.unpack(body)];
  } catch (err) {
    throw corrupt(`chunk ${chunkNo} body is not msgpack: ${(err as Error).message}`);
  }
}

/** Rebuilds the tables from chunks written by writeSnapshot; throws CAIRN_META_SNAPSHOT_CORRUPT on damage. */
export function readSnapshot(chunks: Iterable<Uint8Array>): MetaTables {
  const reader = new SnapshotReader();
  for (const chunk of chunks) reader.add(chunk);
  return reader.finish();
}

/**
 * Reads a snapshot one chunk at a time, into tables of its own: a caller that must keep answering
 * (a standby holding a ZooKeeper session) can yield between chunks, and the live state is untouched
 * until it takes the result.
 */
export class SnapshotReader {
  private builder: SnapshotBuilder | undefined;
  private chunkNo = 0;
  private lastKind: number = Kind.Header;
  private ended = false;

  add(chunk: Uint8Array): void {
    check(!this.ended, `chunk ${this.chunkNo} follows the end chunk`);
    const [kind, body] = unpackChunk(chunk, this.chunkNo);
    if (this.chunkNo === 0) {
      check(kind === Kind.Header, 'the first chunk is not the header');
      this.builder = new SnapshotBuilder(readHeader(body));
    } else {
      assert(this.builder !== undefined, 'builder before header');
      check(kind !== Kind.Header && kindOrder.indexOf(kind) >= kindOrder.indexOf(this.lastKind as Kind), `chunk ${this.chunkNo} of kind ${kind} comes after kind ${this.lastKind}`);
      if (kind === Kind.End) {
        check(obj(body, 'end chunk').chunks === this.chunkNo, `the end chunk counts ${String(obj(body, 'end chunk').chunks)} chunks, ${this.chunkNo} came`);
        this.ended = true;
      } else {
        check(Array.isArray(body), `chunk ${this.chunkNo} is not a list of records`);
        this.builder.add(kind, body);
      }
    }
    this.lastKind = kind;
    this.chunkNo++;
  }

  finish(): MetaTables {
    check(this.builder !== undefined, 'the snapshot is empty');
    check(this.ended, `the snapshot ends after chunk ${this.chunkNo - 1} without its end chunk (truncated)`);
    return this.builder.finish();
  }
}
