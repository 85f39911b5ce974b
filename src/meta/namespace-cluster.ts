// The cluster tables apply keeps beside the namespace: workers and their targets, target states,
// and the published chain tables. The leader's cluster manager decides; these commands record it.

import { assert } from '../errors.ts';
import { targetsPerWorkerMax } from './commands.ts';
import type { PublishChainTableCommand, RegisterWorkerCommand, SetTargetStateCommand } from './commands.ts';
import { FsErrorCode } from './errors.ts';
import { fail, ok } from './namespace-state.ts';
import type { ChainTableInfo, MetaResult, MetaTables, MetaValues, Target, TargetInfo, Worker, WorkerInfo } from './namespace-state.ts';

function targetInfo(target: Target): TargetInfo {
  return { targetId: target.targetId, workerId: target.workerId, path: target.path, state: target.state };
}

function workerInfo(t: MetaTables, worker: Worker): WorkerInfo {
  const targets = worker.targetIds.map((id) => {
    const target = t.targets.get(id);
    assert(target !== undefined, `worker ${worker.workerId} lists missing target ${id}`);
    return targetInfo(target);
  });
  return { workerId: worker.workerId, address: worker.address, targets, registeredMs: worker.registeredMs, updatedMs: worker.updatedMs };
}

/**
 * Adds a worker or updates its address and the paths of the listed targets. Targets are never
 * dropped here: a target missing from a later registration keeps its record (and its state).
 * A new target starts `offline` until the cluster manager sets its state.
 */
export function registerWorker(t: MetaTables, cmd: RegisterWorkerCommand): MetaResult<MetaValues['registerWorker']> {
  const worker = t.workers.get(cmd.workerId);
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
  const record: Worker = worker ?? { workerId: cmd.workerId, address: cmd.address, targetIds: [], registeredMs: cmd.nowMs, updatedMs: cmd.nowMs };
  record.address = cmd.address;
  record.updatedMs = cmd.nowMs;
  record.targetIds = [...known].sort((a, b) => a - b);
  t.workers.set(cmd.workerId, record);
  for (const spec of cmd.targets) {
    const target = t.targets.get(spec.targetId);
    if (target !== undefined) target.path = spec.path;
    else t.targets.set(spec.targetId, { targetId: spec.targetId, workerId: cmd.workerId, path: spec.path, state: 'offline' });
  }
  return ok(workerInfo(t, record));
}

export function setTargetState(t: MetaTables, cmd: SetTargetStateCommand): MetaResult<MetaValues['setTargetState']> {
  const target = t.targets.get(cmd.targetId);
  if (target === undefined) return fail(FsErrorCode.ENOENT, `no target ${cmd.targetId}`);
  target.state = cmd.state;
  return ok(targetInfo(target));
}

/** Replaces a chain table with a newer version; every target must be known, each chain on distinct workers. */
export function publishChainTable(t: MetaTables, cmd: PublishChainTableCommand): MetaResult<MetaValues['publishChainTable']> {
  const current = t.chainTables.get(cmd.tableId);
  if (current !== undefined && cmd.version <= current.version) {
    return fail(FsErrorCode.EINVAL, `chain table ${cmd.tableId} version ${cmd.version} is not newer than ${current.version}`);
  }
  for (let i = 0; i < cmd.chains.length; i++) {
    const workers = new Set<number>();
    for (const targetId of cmd.chains[i]) {
      const target = t.targets.get(targetId);
      if (target === undefined) return fail(FsErrorCode.ENOENT, `chain ${i} names unknown target ${targetId}`);
      if (workers.has(target.workerId)) {
        return fail(FsErrorCode.EINVAL, `chain ${i} has two targets on worker ${target.workerId}`);
      }
      workers.add(target.workerId);
    }
  }
  const chains = Object.freeze(cmd.chains.map((chain) => Object.freeze([...chain])));
  t.chainTables.set(cmd.tableId, Object.freeze({ tableId: cmd.tableId, version: cmd.version, chains, publishedMs: cmd.nowMs }));
  return ok({ tableId: cmd.tableId, version: cmd.version });
}

export function sortedWorkers(t: MetaTables): WorkerInfo[] {
  return [...t.workers.values()].sort((a, b) => a.workerId - b.workerId).map((w) => workerInfo(t, w));
}

export function sortedTargets(t: MetaTables): TargetInfo[] {
  return [...t.targets.values()].sort((a, b) => a.targetId - b.targetId).map(targetInfo);
}

/** Chain tables are frozen when published, so they are handed out without copying. */
export function sortedChainTables(t: MetaTables): ChainTableInfo[] {
  return [...t.chainTables.values()].sort((a, b) => a.tableId - b.tableId);
}
