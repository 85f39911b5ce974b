// The cluster tables apply keeps beside the namespace: workers and their targets, chains with
// their members and versions, and chain tables. The leader's cluster manager decides; these
// commands record it, and refuse anything that would break the tables' invariants.

import { assert } from '../errors.ts';
import { chainLengthMax, TargetState, targetsPerWorkerMax } from './commands.ts';
import type { AddChainsCommand, DecommissionWorkerCommand, EndChainMoveCommand, InitClusterCommand, MoveChainMemberCommand, RegisterWorkerCommand, ReplaceChainMemberCommand, ResizeTargetsCommand, TargetReclaimedCommand, UpdateChainsCommand } from './commands.ts';
import { inChainOrder, markRestarted, replaceMember, replacementProblem, sameMembers, type ChainMember } from './chain-states.ts';
import { FsErrorCode } from './errors.ts';
import { fail, ok } from './namespace-state.ts';
import type { Chain, ChainInfo, ChainMove, ChainTableInfo, MetaResult, MetaTables, MetaValues, RoutingInfo, TargetInfo, Worker, WorkerInfo } from './namespace-state.ts';

export function initCluster(t: MetaTables, cmd: InitClusterCommand): MetaResult<MetaValues['initCluster']> {
  if (t.clusterId !== '' && t.clusterId !== cmd.clusterId) return fail(FsErrorCode.EEXIST, `the cluster is named ${t.clusterId} already`);
  t.clusterId = cmd.clusterId;
  return ok({ clusterId: t.clusterId });
}

function workerInfo(t: MetaTables, worker: Worker): WorkerInfo {
  const targets = worker.targetIds.map((id) => {
    const target = t.targets.get(id);
    assert(target !== undefined, `worker ${worker.workerId} lists missing target ${id}`);
    return { ...target };
  });
  const info: WorkerInfo = { workerId: worker.workerId, instance: worker.instance, address: worker.address, domain: worker.domain, targets, registeredMs: worker.registeredMs, updatedMs: worker.updatedMs };
  if (worker.decommissionedMs !== undefined) info.decommissionedMs = worker.decommissionedMs;
  return info;
}

/**
 * Adds a worker or updates its address, domain and the listed targets' paths and capacities.
 * Targets are never dropped here: a target missing from a later registration keeps its record,
 * its chain and its state. A new target starts `offline`, in no chain. A new instance (the worker
 * restarted) takes its targets out of serving at once, in this same command, so that no master
 * and no client reads from them until they have resynced (see markRestarted).
 */
export function registerWorker(t: MetaTables, cmd: RegisterWorkerCommand): MetaResult<MetaValues['registerWorker']> {
  const worker = t.workers.get(cmd.workerId);
  if (worker?.decommissionedMs !== undefined) {
    return fail(FsErrorCode.EPERM, `worker ${cmd.workerId} was decommissioned: its id is never registered again; start the machine as a new worker (a new --id, empty target directories)`);
  }
  const known = new Set(worker?.targetIds ?? []);
  for (const spec of cmd.targets) {
    const owner = t.targets.get(spec.targetId)?.workerId;
    if (owner !== undefined && owner !== cmd.workerId) {
      return fail(FsErrorCode.EEXIST, `target ${spec.targetId} belongs to worker ${owner}`);
    }
    known.add(spec.targetId);
  }
  if (known.size > targetsPerWorkerMax) {
    return fail(FsErrorCode.EINVAL, `worker ${cmd.workerId} would have ${known.size} targets, more than ${targetsPerWorkerMax}`);
  }
  const restarted = worker !== undefined && worker.instance !== cmd.instance;
  const record: Worker = worker ?? { workerId: cmd.workerId, instance: cmd.instance, address: cmd.address, domain: cmd.domain, targetIds: [], registeredMs: cmd.nowMs, updatedMs: cmd.nowMs };
  record.instance = cmd.instance;
  record.address = cmd.address;
  record.domain = cmd.domain;
  record.updatedMs = cmd.nowMs;
  record.targetIds = [...known].sort((a, b) => a - b);
  t.workers.set(cmd.workerId, record);
  for (const spec of cmd.targets) {
    const target = t.targets.get(spec.targetId);
    if (target !== undefined) {
      target.path = spec.path;
      target.capacityBytes = spec.capacityBytes;
    } else {
      t.targets.set(spec.targetId, { targetId: spec.targetId, workerId: cmd.workerId, path: spec.path, capacityBytes: spec.capacityBytes, state: TargetState.Offline, chainId: 0 });
    }
  }
  if (restarted) takeOutRestarted(t, new Set(record.targetIds));
  t.routingVersion++;
  return ok(workerInfo(t, record));
}

export function resizeTargets(t: MetaTables, cmd: ResizeTargetsCommand): MetaResult<MetaValues['resizeTargets']> {
  for (const spec of cmd.targets) if (!t.targets.has(spec.targetId)) return fail(FsErrorCode.ENOENT, `no target ${spec.targetId}`);
  for (const spec of cmd.targets) t.targets.get(spec.targetId)!.capacityBytes = spec.capacityBytes;
  t.routingVersion++;
  return ok({ targets: cmd.targets.length });
}

function takeOutRestarted(t: MetaTables, targetIds: ReadonlySet<number>): void {
  const chainIds = new Set([...targetIds].map((id) => t.targets.get(id)!.chainId).filter((id) => id !== 0));
  for (const chainId of chainIds) {
    const chain = t.chains.get(chainId)!;
    const members = chain.targetIds.map((id) => ({ targetId: id, state: t.targets.get(id)!.state }));
    const next = markRestarted(members, targetIds);
    if (sameMembers(members, next)) continue;
    setMembers(t, chain, next);
  }
}

/** Why these targets cannot form a chain (unknown, or two on one worker), or undefined. */
function membersProblem(t: MetaTables, chainId: number, targetIds: readonly number[]): string | undefined {
  const workers = new Set<number>();
  for (const id of targetIds) {
    const target = t.targets.get(id);
    if (target === undefined) return `chain ${chainId} names unknown target ${id}`;
    if (target.chainId !== 0 && target.chainId !== chainId) return `target ${id} is already in chain ${target.chainId}`;
    if (workers.has(target.workerId)) return `chain ${chainId} has two targets on worker ${target.workerId}`;
    workers.add(target.workerId);
  }
  return undefined;
}

/** New chains, all members serving (their targets are empty, so they agree), appended to a table. */
export function addChains(t: MetaTables, cmd: AddChainsCommand): MetaResult<MetaValues['addChains']> {
  if (cmd.chains.length === 0) return fail(FsErrorCode.EINVAL, 'no chains to add');
  const claimed = new Set<number>();
  for (const chain of cmd.chains) {
    if (t.chains.has(chain.chainId)) return fail(FsErrorCode.EEXIST, `chain ${chain.chainId} exists`);
    const problem = membersProblem(t, chain.chainId, chain.targetIds);
    if (problem !== undefined) return fail(problem.includes('unknown') ? FsErrorCode.ENOENT : FsErrorCode.EINVAL, problem);
    for (const id of chain.targetIds) {
      if (claimed.has(id)) return fail(FsErrorCode.EINVAL, `target ${id} is in two of the new chains`);
      claimed.add(id);
    }
  }
  for (const chain of cmd.chains) {
    t.chains.set(chain.chainId, Object.freeze({ chainId: chain.chainId, version: 1, targetIds: Object.freeze([...chain.targetIds]) }));
    for (const id of chain.targetIds) {
      const target = t.targets.get(id)!;
      target.chainId = chain.chainId;
      target.state = TargetState.Serving;
      delete target.leftChainAt;
    }
  }
  const table = t.chainTables.get(cmd.tableId);
  const chainIds = Object.freeze([...(table?.chainIds ?? []), ...cmd.chains.map((c) => c.chainId)]);
  const version = (table?.version ?? 0) + 1;
  t.chainTables.set(
    cmd.tableId,
    Object.freeze({ tableId: cmd.tableId, version, chainIds, chainCounts: Object.freeze([...(table?.chainCounts ?? []), chainIds.length]), publishedMs: cmd.nowMs }),
  );
  t.routingVersion++;
  return ok({ tableId: cmd.tableId, version });
}

/**
 * A reclaim of a target that left a chain is done: it is not reclaimed again. Nothing changes if
 * the target joined a chain (and maybe left again) since the reclaim began.
 */
export function targetReclaimed(t: MetaTables, cmd: TargetReclaimedCommand): MetaResult<MetaValues['targetReclaimed']> {
  const target = t.targets.get(cmd.targetId);
  if (target === undefined) return fail(FsErrorCode.ENOENT, `no target ${cmd.targetId}`);
  if (target.chainId !== 0 || target.leftChainAt !== cmd.leftChainAt) return ok({ cleared: false });
  delete target.leftChainAt;
  return ok({ cleared: true });
}

/**
 * New members, order and states for chains, each checked against the version it was computed
 * from; all apply or none. A member may be replaced by a target in no chain (a new disk after a
 * loss); a dropped member leaves the chain offline. At most one member syncs.
 */
export function updateChains(t: MetaTables, cmd: UpdateChainsCommand): MetaResult<MetaValues['updateChains']> {
  for (const update of cmd.chains) {
    const chain = t.chains.get(update.chainId);
    if (chain === undefined) return fail(FsErrorCode.ENOENT, `no chain ${update.chainId}`);
    if (chain.version !== update.version) {
      return fail(FsErrorCode.EAGAIN, `chain ${update.chainId} is at version ${chain.version}, the update was made for ${update.version}`);
    }
    const problem = membersProblem(t, update.chainId, update.targets.map((m) => m.targetId));
    if (problem !== undefined) return fail(problem.includes('unknown') ? FsErrorCode.ENOENT : FsErrorCode.EINVAL, problem);
    if (!inChainOrder(update.targets)) return fail(FsErrorCode.EINVAL, `chain ${update.chainId}: members are not ordered serving, lastsrv, syncing, waiting, offline`);
    if (update.targets.filter((m) => m.state === TargetState.Syncing).length > 1) {
      return fail(FsErrorCode.EINVAL, `chain ${update.chainId}: more than one member syncing`);
    }
  }
  const changed = cmd.chains.map((update) => setMembers(t, t.chains.get(update.chainId)!, update.targets));
  t.routingVersion++;
  return ok({ chains: changed });
}

/**
 * Marks a worker decommissioned (lost for good). Nothing else changes here: its targets leave
 * their chains one by one as the cluster manager finds replacements (replaceChainMember), so a
 * chain whose other members are down keeps what this worker's targets hold until then. Applying it
 * again changes nothing.
 */
export function decommissionWorker(t: MetaTables, cmd: DecommissionWorkerCommand): MetaResult<MetaValues['decommissionWorker']> {
  const worker = t.workers.get(cmd.workerId);
  if (worker === undefined) return fail(FsErrorCode.ENOENT, `no worker ${cmd.workerId}`);
  if (worker.decommissionedMs === undefined) {
    worker.decommissionedMs = cmd.nowMs;
    worker.updatedMs = cmd.nowMs;
    t.routingVersion++;
  }
  return ok(workerInfo(t, worker));
}

/** Why the target cannot replace a member of `chain`, or undefined (state, owner and placement checks). */
function newcomerProblem(t: MetaTables, chain: Chain, lostId: number, newId: number): string | undefined {
  const target = t.targets.get(newId);
  if (target === undefined) return `no target ${newId}`;
  if (target.chainId !== 0) return `target ${newId} is already in chain ${target.chainId}`;
  const worker = t.workers.get(target.workerId)!;
  if (worker.decommissionedMs !== undefined) return `target ${newId} is on decommissioned worker ${worker.workerId}`;
  const clash = chain.targetIds.find((id) => id !== lostId && t.targets.get(id)!.workerId === target.workerId);
  if (clash !== undefined) return `chain ${chain.chainId} has target ${clash} on worker ${target.workerId} already`;
  return undefined;
}

/**
 * A free target takes a lost member's place (see ReplaceChainMemberCommand): the lost one must be
 * on a decommissioned worker or offline, and another member must serve (replacementProblem).
 */
export function replaceChainMember(t: MetaTables, cmd: ReplaceChainMemberCommand): MetaResult<MetaValues['replaceChainMember']> {
  const chain = t.chains.get(cmd.chainId);
  if (chain === undefined) return fail(FsErrorCode.ENOENT, `no chain ${cmd.chainId}`);
  if (chain.version !== cmd.version) return fail(FsErrorCode.EAGAIN, `chain ${cmd.chainId} is at version ${chain.version}, the replacement was chosen at ${cmd.version}`);
  if (!chain.targetIds.includes(cmd.lostTargetId)) return fail(FsErrorCode.EINVAL, `target ${cmd.lostTargetId} is not in chain ${cmd.chainId}`);
  const lost = t.targets.get(cmd.lostTargetId)!;
  if (t.workers.get(lost.workerId)!.decommissionedMs === undefined && lost.state !== TargetState.Offline) {
    return fail(FsErrorCode.EINVAL, `target ${lost.targetId} is ${lost.state} on worker ${lost.workerId}, which is in service: only an offline member or one of a decommissioned worker is replaced`);
  }
  const newcomer = newcomerProblem(t, chain, cmd.lostTargetId, cmd.newTargetId);
  if (newcomer !== undefined) return fail(t.targets.has(cmd.newTargetId) ? FsErrorCode.EINVAL : FsErrorCode.ENOENT, newcomer);
  const members = chain.targetIds.map((id) => ({ targetId: id, state: t.targets.get(id)!.state }));
  const problem = replacementProblem(members, cmd.lostTargetId);
  if (problem !== undefined) return fail(FsErrorCode.EINVAL, `chain ${cmd.chainId}: ${problem}`);
  if (chain.moving !== undefined && (cmd.lostTargetId === chain.moving.fromTargetId || cmd.lostTargetId === chain.moving.toTargetId)) {
    return fail(FsErrorCode.EINVAL, `target ${cmd.lostTargetId} is an end of chain ${cmd.chainId}'s move (${chain.moving.fromTargetId} to ${chain.moving.toTargetId}): it leaves when the move ends`);
  }
  const next = setMembers(t, chain, replaceMember(members, cmd.lostTargetId, cmd.newTargetId));
  t.routingVersion++;
  return ok(next);
}

/**
 * A free target joins a healthy chain as an extra member, to take `from`'s place once it has
 * resynced (see MoveChainMemberCommand). Refused unless every member serves and no move is under
 * way, so a chain moves one member at a time and never while it is short of a replica.
 */
export function moveChainMember(t: MetaTables, cmd: MoveChainMemberCommand): MetaResult<MetaValues['moveChainMember']> {
  const chain = t.chains.get(cmd.chainId);
  if (chain === undefined) return fail(FsErrorCode.ENOENT, `no chain ${cmd.chainId}`);
  if (chain.version !== cmd.version) return fail(FsErrorCode.EAGAIN, `chain ${cmd.chainId} is at version ${chain.version}, the move was chosen at ${cmd.version}`);
  if (chain.moving !== undefined) return fail(FsErrorCode.EINVAL, `chain ${cmd.chainId} is moving target ${chain.moving.fromTargetId} to ${chain.moving.toTargetId} already`);
  if (!chain.targetIds.includes(cmd.fromTargetId)) return fail(FsErrorCode.EINVAL, `target ${cmd.fromTargetId} is not in chain ${cmd.chainId}`);
  if (chain.targetIds.length >= chainLengthMax) return fail(FsErrorCode.EINVAL, `chain ${cmd.chainId} has ${chain.targetIds.length} members, the most a chain may have`);
  const notServing = chain.targetIds.find((id) => t.targets.get(id)!.state !== TargetState.Serving);
  if (notServing !== undefined) return fail(FsErrorCode.EINVAL, `chain ${cmd.chainId}: member ${notServing} is ${t.targets.get(notServing)!.state}; only a chain whose members all serve moves one`);
  const from = t.targets.get(cmd.fromTargetId)!;
  if (t.workers.get(from.workerId)!.decommissionedMs !== undefined) return fail(FsErrorCode.EINVAL, `target ${from.targetId} is on decommissioned worker ${from.workerId}: it is replaced, not moved`);
  const newcomer = newcomerProblem(t, chain, 0, cmd.toTargetId);
  if (newcomer !== undefined) return fail(t.targets.has(cmd.toTargetId) ? FsErrorCode.EINVAL : FsErrorCode.ENOENT, newcomer);
  const members = chain.targetIds.map((id) => ({ targetId: id, state: TargetState.Serving as TargetState }));
  const next = setMembers(t, chain, [...members, { targetId: cmd.toTargetId, state: TargetState.Syncing }], { fromTargetId: cmd.fromTargetId, toTargetId: cmd.toTargetId });
  t.routingVersion++;
  return ok(next);
}

/**
 * Ends a chain's move (see EndChainMoveCommand): 'done' only once the newcomer serves; 'cancelled'
 * only while it does not (nor served last): a newcomer that served may hold writes no one else has.
 */
export function endChainMove(t: MetaTables, cmd: EndChainMoveCommand): MetaResult<MetaValues['endChainMove']> {
  const chain = t.chains.get(cmd.chainId);
  if (chain === undefined) return fail(FsErrorCode.ENOENT, `no chain ${cmd.chainId}`);
  if (chain.version !== cmd.version) return fail(FsErrorCode.EAGAIN, `chain ${cmd.chainId} is at version ${chain.version}, the end of its move was decided at ${cmd.version}`);
  const move = chain.moving;
  if (move === undefined) return fail(FsErrorCode.EINVAL, `chain ${cmd.chainId} has no move under way`);
  const members = chain.targetIds.map((id) => ({ targetId: id, state: t.targets.get(id)!.state }));
  const newcomer = t.targets.get(move.toTargetId)!.state;
  if (cmd.outcome === 'done' && newcomer !== TargetState.Serving) {
    return fail(FsErrorCode.EINVAL, `chain ${cmd.chainId}: the newcomer ${move.toTargetId} is ${newcomer}; the move is done once it serves`);
  }
  if (cmd.outcome === 'cancelled' && (newcomer === TargetState.Serving || newcomer === TargetState.LastServing)) {
    return fail(FsErrorCode.EINVAL, `chain ${cmd.chainId}: the newcomer ${move.toTargetId} is ${newcomer} and may hold writes no other member has; the move is not cancelled`);
  }
  const leaving = cmd.outcome === 'done' ? move.fromTargetId : move.toTargetId;
  const next = setMembers(t, chain, members.filter((m) => m.targetId !== leaving), undefined);
  t.routingVersion++;
  return ok(next);
}

/**
 * Replaces a chain's members (checked by the caller) and bumps its version; dropped ones leave it
 * offline. The chain's move carries on unless the caller says otherwise or one of its ends left.
 */
function setMembers(t: MetaTables, chain: Chain, members: readonly ChainMember[], moving: ChainMove | undefined = chain.moving): Chain {
  const kept = new Set(members.map((m) => m.targetId));
  for (const id of chain.targetIds) {
    if (kept.has(id)) continue;
    const dropped = t.targets.get(id)!;
    dropped.chainId = 0;
    dropped.state = TargetState.Offline;
    dropped.leftChainAt = t.routingVersion + 1; // every caller moves the routing version past it
  }
  for (const m of members) {
    const target = t.targets.get(m.targetId)!;
    target.chainId = chain.chainId;
    target.state = m.state;
    delete target.leftChainAt; // its resync makes it equal to the chain
  }
  // A move whose ends are both still members carries on; otherwise it is over.
  const move = moving === undefined || (kept.has(moving.fromTargetId) && kept.has(moving.toTargetId)) ? moving : undefined;
  const next: Chain = Object.freeze({
    chainId: chain.chainId,
    version: chain.version + 1,
    targetIds: Object.freeze(members.map((m) => m.targetId)),
    ...(move === undefined ? {} : { moving: Object.freeze({ ...move }) }),
  });
  t.chains.set(chain.chainId, next);
  return next;
}

export function sortedWorkers(t: MetaTables): WorkerInfo[] {
  return [...t.workers.values()].sort((a, b) => a.workerId - b.workerId).map((w) => workerInfo(t, w));
}

export function sortedTargets(t: MetaTables): TargetInfo[] {
  return [...t.targets.values()].sort((a, b) => a.targetId - b.targetId).map((x) => ({ ...x }));
}

/** Chains and tables are replaced, never changed, so they are handed out without copying. */
export function sortedChains(t: MetaTables): ChainInfo[] {
  return [...t.chains.values()].sort((a, b) => a.chainId - b.chainId);
}

export function sortedChainTables(t: MetaTables): ChainTableInfo[] {
  return [...t.chainTables.values()].sort((a, b) => a.tableId - b.tableId);
}

export function routing(t: MetaTables): RoutingInfo {
  return {
    clusterId: t.clusterId,
    routingVersion: t.routingVersion,
    workers: [...t.workers.values()].sort((a, b) => a.workerId - b.workerId).map((w) => ({ workerId: w.workerId, address: w.address })),
    targets: sortedTargets(t),
    chains: sortedChains(t),
    tables: sortedChainTables(t),
  };
}
