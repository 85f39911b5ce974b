// `cairn admin ...`: the journal (members, leader, lag, transfer, membership, checkpoints, recovery
// of a survivor as the only member) and metadata backup and restore.

import { fileMode, nodeDisk } from '../io/node-disk.ts';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { crc32c } from '@node-rs/crc32';
import type { Command } from 'commander';
import type { MasterClient } from '../client/index.ts';
import { CairnError, ErrorCode } from '../errors.ts';
import type { JournalStatus } from '../journal/index.ts';
import { MetaError, MetaErrorCode } from '../meta/index.ts';
import { RpcError, RpcErrorCode } from '../rpc/index.ts';
import { defaultLocalDir, readLocalCluster, withClient as run, type TargetFlags } from './cluster-target.ts';
import { registerClusterCommands } from './cluster-cmd.ts';
import { registerWorkerCommands } from './worker-cmd.ts';
import { registerChainCommands } from './chain-cmd.ts';
import { registerQuarantineCommands } from './quarantine-cmd.ts';
import { registerSessionsCommands } from './sessions-cmd.ts';
import { registerS3UserCommands } from './s3-user-cmd.ts';
import { registerDashboardUserCommands } from './dashboard-user-cmd.ts';
import { configError, parseAddress, parsePositiveInt } from './config.ts';
import { jsonLine, printable } from './format.ts';
import { confirm } from './ask.ts';
import { replaceFileSync } from './replace-file.ts';
import { acquireDirLock } from '../master/dir-lock.ts';
import { describeRecovery, planRecovery, recoverAlone, unusedIdAfter } from '../journal/raft/recover.ts';

type Flags = TargetFlags & { json?: boolean };

/** A backup file: magic, u32 crc32c of the body, body (the metadata snapshot's chunks). */
const backupMagic = Buffer.from('CAIRNBK1');

export function registerAdminCommands(program: Command, addTargetOptions: (c: Command) => Command): void {
  const admin = program.command('admin').description('cluster administration');
  const journal = admin.command('journal').description('the metadata journal');

  addTargetOptions(journal.command('info').option('--json', 'print JSON'))
    .description('members, leader, term, commit and applied index, each member\'s lag')
    .action((o: Flags) => run(o, (c) => journalInfo(c, o)));

  addTargetOptions(journal.command('transfer-leader').argument('<id>'))
    .description('hand leadership to another voting master')
    .action((id: string, o: Flags) =>
      run(o, async (c) => {
        const r = await c.call<{ leader?: { id: number; address: string } }>('admin.journal.transfer', { id: parsePositiveInt(id, 'id') });
        console.log(`leader is now master ${r.leader?.id} at ${r.leader?.address}`);
      }),
    );

  addTargetOptions(journal.command('add').argument('<id>').argument('[address]', 'host:port of the new master, started with --join (a local cluster\'s own masters: found in its record)'))
    .description('add a master under an id the cluster never had: it joins as a learner, catches up, then becomes a voter')
    .action((id: string, address: string | undefined, o: Flags) =>
      run(o, async (c) => {
        const n = parsePositiveInt(id, 'id');
        const at = address === undefined ? localAddress(n, o) : parseAddress(address, 'address');
        await c.call('admin.journal.add', { id: n, address: at });
        console.log(`master ${id} at ${at} is a voter`);
      }),
    );

  addTargetOptions(journal.command('remove').argument('<id>'))
    .description('remove a master from the group')
    .action((id: string, o: Flags) =>
      run(o, async (c) => {
        const n = parsePositiveInt(id, 'id');
        // The call itself is idempotent (a client may retry it); the command says what it did.
        const before = await c.call<JournalStatus>('admin.journal.info', {});
        const member = before.members.some((m) => m.id === n);
        if (!member && !(before.removedIds ?? []).includes(n)) throw configError(`master ${n} is not in the group (its members: ${before.members.map((m) => m.id).join(', ')}): nothing removed`);
        const st = await c.call<JournalStatus>('admin.journal.remove', { id: n });
        console.log(`master ${n} ${member ? 'removed' : 'was removed already'}; a master that replaces it needs a new id, such as ${unusedId(st)} (${n} is never added back)`);
      }),
    );

  journal
    .command('recover')
    .requiredOption('--dir <path>', 'the data directory of a stopped master that survived')
    .requiredOption('--id <n>', 'the id that master ran with')
    .option('--yes', 'do not ask for confirmation (needed when not on a terminal)')
    .description('a Raft cluster that lost a majority of its masters for good: make this stopped master the only member, keeping its log and state (offline)')
    .action((o: { dir: string; id: string; yes?: boolean }) => recoverJournal(o.dir, parsePositiveInt(o.id, 'id'), o.yes === true));

  addTargetOptions(journal.command('checkpoint').option('--json', 'print JSON'))
    .description('snapshot the metadata on every reachable master and let their WALs shrink')
    .action((o: Flags) => run(o, (c) => checkpointAll(c, o)));

  addTargetOptions(admin.command('backup').argument('<file>'))
    .description('write a consistent snapshot of all metadata to a file')
    .action((file: string, o: Flags) => run(o, (c) => backup(c, file)));

  addTargetOptions(admin.command('restore').argument('<file>'))
    .description('load a backup into a new, empty cluster')
    .action((file: string, o: Flags) => run(o, (c) => restore(c, file)));

  registerClusterCommands(admin, addTargetOptions);
  registerWorkerCommands(admin, addTargetOptions);
  registerChainCommands(admin, addTargetOptions);
  registerQuarantineCommands(admin, addTargetOptions);
  registerSessionsCommands(admin, addTargetOptions);
  registerS3UserCommands(admin, addTargetOptions);
  registerDashboardUserCommands(admin, addTargetOptions);
}

/** An id above every id the cluster has had: its members' and its removed ones. */
function unusedId(st: JournalStatus): number {
  return Math.max(0, ...st.members.map((m) => m.id), ...(st.removedIds ?? [])) + 1;
}

/** A master's address from the record of the local cluster the flags point at (`local up --join` wrote it there). */
function localAddress(id: number, o: Flags): string {
  if (o.masters !== undefined || process.env.CAIRN_MASTERS !== undefined) throw configError(`give master ${id}'s address: host:port, as it was started with --listen`);
  const dir = o.dir ?? defaultLocalDir();
  const p = readLocalCluster(dir)?.processes.find((x) => x.kind === 'master' && x.id === id);
  if (p === undefined) throw configError(`master ${id} is not in the local cluster in ${dir}: start it with 'cairn local up --dir ${dir} --join ${id}', or give its address`);
  return p.address;
}

async function leaderStatus(c: MasterClient): Promise<JournalStatus> {
  // The leader knows every member's progress; a follower only its own.
  const ping = await c.call<{ leader?: { address: string }; isLeader: boolean }>('master.ping', {});
  const st = await c.call<JournalStatus>('admin.journal.info', {});
  if (st.role === 'leader' || ping.leader?.address === undefined) return st;
  return c.callAt<JournalStatus>(ping.leader.address, 'admin.journal.info', {});
}

async function journalInfo(c: MasterClient, o: Flags): Promise<void> {
  const leader = await leaderStatus(c);
  const views = await Promise.all(
    leader.members.map(async (m) => {
      try {
        return { ...m, view: await c.callAt<JournalStatus>(m.address, 'admin.journal.info', {}) };
      } catch (err) {
        return { ...m, view: undefined, error: (err as Error).message };
      }
    }),
  );
  const zk = leader.backend === 'zookeeper';
  if (o.json) {
    console.log(jsonLine({ backend: leader.backend, leader: leader.leader, term: leader.term, commitIndex: leader.commitIndex, lastIndex: leader.lastIndex, zookeeper: leader.zookeeper, members: views, removedIds: leader.removedIds ?? [] }));
    return;
  }
  // The ZooKeeper journal's term is its epoch: the version of the znode each new leader bumps.
  console.log(`backend ${leader.backend}, leader master ${leader.leader?.id ?? '?'} at ${leader.leader?.address ?? '?'}, ${zk ? 'epoch' : 'term'} ${leader.term}, commit ${leader.commitIndex}, last index ${leader.lastIndex}`);
  if (leader.zookeeper !== undefined) console.log(`ensemble ${leader.zookeeper.ensemble}, root ${leader.zookeeper.root} (masters listed are those connected now)`);
  console.log(`id  address                role      state      applied   lag${zk ? '       session' : ''}`);
  for (const m of views) {
    const state = m.view === undefined ? 'down' : m.view.role;
    const applied = m.view?.appliedIndex ?? '-';
    const lag = m.lagEntries ?? (m.view === undefined ? '-' : Math.max(0, leader.commitIndex - m.view.appliedIndex));
    const session = zk ? `  ${String(lag).padEnd(9)} ${m.view?.zookeeper?.session ?? '-'}` : ` ${lag}`;
    console.log(`${String(m.id).padEnd(3)} ${printable(m.address).padEnd(22)} ${m.role.padEnd(9)} ${state.padEnd(10)} ${String(applied).padEnd(9)}${session}`);
  }
  if ((leader.removedIds ?? []).length > 0) console.log(`removed, never added back: ${leader.removedIds.join(', ')}; a new master takes an id from ${unusedId(leader)} up`);
}

/**
 * `admin journal recover`: offline, under the directory's lock (so no master runs on it), prints
 * what it will do, asks (or takes --yes), and appends the removals (src/journal/raft/recover.ts).
 */
async function recoverJournal(dir: string, id: number, yes: boolean): Promise<void> {
  if (!existsSync(dir)) throw configError(`--dir ${dir} does not exist: give the data directory of a master that survived`);
  const lock = await acquireDirLock(dir);
  try {
    const plan = await planRecovery(nodeDisk, dir, id);
    for (const line of describeRecovery(plan)) console.log(printable(line));
    if (plan.removing.length === 0) return;
    await confirm(yes, `cairn: make master ${id} the only member? [y/N] `, `recovering master ${id} alone removes masters ${plan.removing.join(', ')} for good`, 'changed');
    await recoverAlone(nodeDisk, plan);
    console.log(`done: start master ${id} on ${printable(dir)} with its usual flags; it elects itself. Then, for each new master: start it with --join and an empty --dir, and run 'cairn admin journal add ID HOST:PORT' (ids from ${unusedIdAfter(plan)} up)`);
  } finally {
    await lock.release();
  }
}

async function checkpointAll(c: MasterClient, o: Flags): Promise<void> {
  const st = await leaderStatus(c);
  const results = await Promise.all(
    st.members.map(async (m) => {
      try {
        return { id: m.id, ...(await c.callAt<{ index: number }>(m.address, 'admin.journal.checkpoint', {})) };
      } catch (err) {
        return { id: m.id, error: (err as Error).message };
      }
    }),
  );
  if (o.json) console.log(jsonLine(results));
  else for (const r of results) console.log('error' in r ? `master ${r.id}: failed: ${printable(String(r.error))}` : `master ${r.id}: checkpoint at index ${r.index}`);
}

async function backup(c: MasterClient, file: string): Promise<void> {
  const { conn, address } = await leaderConnection(c);
  const r = await conn.callRaw('admin.backup', {}, address);
  if (r.payload === undefined) throw new RpcError(RpcErrorCode.Internal, `the master at ${address} answered admin.backup without the backup data`);
  const header = Buffer.alloc(backupMagic.length + 4);
  backupMagic.copy(header);
  header.writeUInt32BE(crc32c(r.payload), backupMagic.length);
  // The whole namespace (and, later, the S3 keys' secrets): the owner's alone.
  // Written beside the name and renamed over it: a full disk leaves an older backup whole.
  replaceFileSync(file, Buffer.concat([header, r.payload]), fileMode);
  const meta = r.body as { chunks: number; applied: number };
  console.log(`backup of ${r.payload.length} bytes (${meta.chunks} chunks, as of journal index ${meta.applied}) written to ${printable(file)}`);
}

async function restore(c: MasterClient, file: string): Promise<void> {
  const data = await readFile(file);
  if (data.length < backupMagic.length + 4 || !data.subarray(0, backupMagic.length).equals(backupMagic)) {
    throw configError(`${file} is not a cairn backup (bad magic)`);
  }
  const body = data.subarray(backupMagic.length + 4);
  if (crc32c(body) !== data.readUInt32BE(backupMagic.length)) throw new MetaError(MetaErrorCode.SnapshotCorrupt, `${file} is damaged: checksum mismatch`);
  const { conn, address } = await leaderConnection(c);
  const r = await conn.callRaw('admin.restore', {}, address, body);
  console.log(`restored ${printable(file)}: ${jsonLine(r.body)}`);
}

async function leaderConnection(c: MasterClient): Promise<{ conn: MasterClient; address: string }> {
  const st = await leaderStatus(c);
  if (st.leader === undefined) throw new CairnError(ErrorCode.Unavailable, 'no leader is known; retry in a moment');
  return { conn: c, address: st.leader.address };
}
