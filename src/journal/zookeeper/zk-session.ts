// A ZooKeeper session as promises: the few operations the journal needs, every one with a
// deadline, and ZooKeeper's error codes mapped to names the journal branches on. Paths are given
// relative to the cluster's root (`/cairn/<cluster-id>`), which this class prefixes.

import { createHash, createHmac } from 'node:crypto';
import zookeeper from 'node-zookeeper-client';
import { CairnError, ErrorCode } from '../../errors.ts';

export type ZkErrorName = 'NO_NODE' | 'NODE_EXISTS' | 'BAD_VERSION' | 'CONNECTION_LOSS' | 'SESSION_EXPIRED' | 'NO_AUTH' | 'NOT_EMPTY' | 'TIMEOUT' | 'OTHER';

/** A failed ZooKeeper operation; `zk` names what went wrong. */
export class ZkError extends Error {
  readonly zk: ZkErrorName;
  constructor(zk: ZkErrorName, message: string) {
    super(message);
    this.name = 'ZkError';
    this.zk = zk;
  }
}

export function isZk(err: unknown, name: ZkErrorName): boolean {
  return err instanceof ZkError && err.zk === name;
}

const Ex = zookeeper.Exception;
/** Anyone may do anything: the shared /cairn parent, and clusters without a secret. */
const openAcl = [new zookeeper.ACL(zookeeper.Permission.ALL, new zookeeper.Id('world', 'anyone'))];
const names = new Map<number, ZkErrorName>([
  [Ex.NO_NODE, 'NO_NODE'],
  [Ex.NODE_EXISTS, 'NODE_EXISTS'],
  [Ex.BAD_VERSION, 'BAD_VERSION'],
  [Ex.CONNECTION_LOSS, 'CONNECTION_LOSS'],
  [Ex.SESSION_EXPIRED, 'SESSION_EXPIRED'],
  [Ex.NO_AUTH, 'NO_AUTH'],
  [Ex.NOT_EMPTY, 'NOT_EMPTY'],
  [Ex.OPERATION_TIMEOUT, 'TIMEOUT'],
]);

function wrap(err: unknown, what: string): ZkError {
  if (err instanceof ZkError) return err;
  const code = typeof (err as { getCode?: unknown })?.getCode === 'function' ? (err as zookeeper.Exception).getCode() : undefined;
  return new ZkError(code === undefined ? 'OTHER' : (names.get(code) ?? 'OTHER'), `${what}: ${err instanceof Error ? err.message : String(err)}`);
}

export type Op =
  | { op: 'check'; path: string; version: number }
  | { op: 'create'; path: string; data: Buffer; sequential?: boolean }
  | { op: 'remove'; path: string; version?: number }
  | { op: 'setData'; path: string; data: Buffer; version: number };

export interface ZkSessionOptions {
  /** host:port,host:port,... of the ensemble. */
  connect: string;
  /** The cluster's root, e.g. /cairn/c1a2b3. */
  root: string;
  sessionTimeoutMs: number;
  /** Each operation's deadline (the session keeps going; the caller decides what a timeout means). */
  opTimeoutMs: number;
  /** The cluster secret: when set, every znode of the cluster is readable and writable only with it (digest ACL). */
  secret?: string;
}

/** The digest identity derived from the cluster secret: user `cairn`, a password no one types. */
export function digestAuth(secret: string): { auth: string; id: string } {
  const password = createHmac('sha256', secret).update('cairn zookeeper acl').digest('base64url');
  const auth = `cairn:${password}`;
  return { auth, id: `cairn:${createHash('sha1').update(auth).digest('base64')}` };
}

export class ZkSession {
  readonly opts: ZkSessionOptions;
  private readonly client: zookeeper.Client;
  private readonly acl: zookeeper.ACL[];
  private closed = false;

  private constructor(opts: ZkSessionOptions, client: zookeeper.Client, acl: zookeeper.ACL[]) {
    this.opts = opts;
    this.client = client;
    this.acl = acl;
  }

  /** Connects (waiting up to `connectTimeoutMs`) and makes sure the cluster's root exists. */
  static async open(opts: ZkSessionOptions, connectTimeoutMs: number, onState: (state: string) => void): Promise<ZkSession> {
    const client = zookeeper.createClient(opts.connect, { sessionTimeout: opts.sessionTimeoutMs, spinDelay: 200, retries: 0 });
    let acl = openAcl;
    if (opts.secret !== undefined && opts.secret !== '') {
      const { auth, id } = digestAuth(opts.secret);
      client.addAuthInfo('digest', Buffer.from(auth));
      acl = [new zookeeper.ACL(zookeeper.Permission.ALL, new zookeeper.Id('digest', id))];
    }
    const session = new ZkSession(opts, client, acl);
    client.on('state', (s: zookeeper.State) => onState(s.name));
    const connected = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        client.close();
        reject(new CairnError(ErrorCode.Unavailable, `no ZooKeeper server of ${opts.connect} answered within ${connectTimeoutMs} ms`));
      }, connectTimeoutMs);
      client.once('connected', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    client.connect();
    await connected;
    // The shared parent is open to all clusters of the ensemble; each cluster's root carries its ACL.
    const parent = opts.root.slice(0, opts.root.lastIndexOf('/'));
    if (parent !== '') await session.createIfMissing(parent, openAcl);
    await session.createIfMissing(opts.root, acl);
    return session;
  }

  get sessionId(): string {
    return this.client.getSessionId().toString('hex');
  }

  get state(): string {
    return this.client.getState().name;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.client.close();
  }

  private full(path: string): string {
    return this.opts.root + path;
  }

  private call<T>(what: string, run: (done: (err: unknown, value?: T) => void) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new ZkError('TIMEOUT', `${what}: no answer within ${this.opts.opTimeoutMs} ms`)), this.opts.opTimeoutMs);
      run((err, value) => {
        clearTimeout(timer);
        if (err !== null && err !== undefined) reject(wrap(err, what));
        else resolve(value as T);
      });
    });
  }

  /** Creates `path` (relative to the root) with `data` if missing; an existing one is left as it is. */
  async ensure(path: string, data: Buffer): Promise<void> {
    await this.createIfMissing(this.full(path), this.acl, data);
  }

  private async createIfMissing(full: string, acl: zookeeper.ACL[], data: Buffer = Buffer.alloc(0)): Promise<void> {
    await this.call<string>(`create ${full}`, (done) => this.client.create(full, data, acl, zookeeper.CreateMode.PERSISTENT, done)).catch((err: unknown) => {
      if (!isZk(err, 'NODE_EXISTS')) throw err;
    });
  }

  /** Creates a znode; returns the created path relative to the root (with its sequence number when sequential). */
  async create(path: string, data: Buffer, mode: 'persistent' | 'ephemeral' | 'ephemeral-sequential'): Promise<string> {
    const m = { persistent: zookeeper.CreateMode.PERSISTENT, ephemeral: zookeeper.CreateMode.EPHEMERAL, 'ephemeral-sequential': zookeeper.CreateMode.EPHEMERAL_SEQUENTIAL }[mode];
    const created = await this.call<string>(`create ${path}`, (done) => this.client.create(this.full(path), data, this.acl, m, done));
    return created.slice(this.opts.root.length);
  }

  async getData(path: string, watch?: () => void): Promise<{ data: Buffer; version: number }> {
    return this.call(`get ${path}`, (done) => {
      const cb = (err: unknown, data: Buffer, stat: zookeeper.Stat): void => done(err, { data: data ?? Buffer.alloc(0), version: stat?.version });
      if (watch === undefined) this.client.getData(this.full(path), cb);
      else this.client.getData(this.full(path), () => watch(), cb);
    });
  }

  async setData(path: string, data: Buffer, version: number): Promise<number> {
    return this.call(`set ${path}`, (done) => this.client.setData(this.full(path), data, version, (err, stat) => done(err, stat?.version)));
  }

  async exists(path: string, watch?: () => void): Promise<boolean> {
    return this.call(`exists ${path}`, (done) => {
      const cb = (err: unknown, stat: zookeeper.Stat | null): void => done(err, stat !== null && stat !== undefined);
      if (watch === undefined) this.client.exists(this.full(path), cb);
      else this.client.exists(this.full(path), () => watch(), cb);
    });
  }

  /** How many children `path` has (from its stat, without listing them), or undefined when it does not exist. */
  async childCount(path: string): Promise<number | undefined> {
    return this.call(`stat ${path}`, (done) => this.client.exists(this.full(path), (err, stat) => done(err, stat === null || stat === undefined ? undefined : stat.numChildren)));
  }

  async getChildren(path: string, watch?: () => void): Promise<string[]> {
    return this.call(`children of ${path}`, (done) => {
      const cb = (err: unknown, children: string[]): void => done(err, children);
      if (watch === undefined) this.client.getChildren(this.full(path), cb);
      else this.client.getChildren(this.full(path), () => watch(), cb);
    });
  }

  /**
   * All of `ops` or none, in one round through the ZooKeeper leader; returns the created paths
   * (relative to the root) of the creates, in order. A failed check fails the whole transaction.
   */
  async multi(ops: readonly Op[]): Promise<string[]> {
    const t = this.client.transaction();
    for (const o of ops) {
      if (o.op === 'check') t.check(this.full(o.path), o.version);
      else if (o.op === 'create') t.create(this.full(o.path), o.data, this.acl, o.sequential === true ? zookeeper.CreateMode.PERSISTENT_SEQUENTIAL : zookeeper.CreateMode.PERSISTENT);
      else if (o.op === 'remove') t.remove(this.full(o.path), o.version ?? -1);
      else t.setData(this.full(o.path), o.data, o.version);
    }
    const results = await this.call<{ type: number; path?: string; err?: number }[]>('multi', (done) => t.commit((err, res) => done(err, res)));
    const created: string[] = [];
    for (const r of results ?? []) if (typeof r.path === 'string') created.push(r.path.slice(this.opts.root.length));
    return created;
  }
}
