// Placement's view of a cluster: its targets validated and grouped by worker, and the groups a
// chain must keep distinct (failure domains when there are at least r of them, else workers).

import { CairnError, ErrorCode } from '../errors.ts';

/** One chunk store (a data directory of a worker), as placement sees it. */
export interface PlacementTarget {
  targetId: number;
  workerId: number;
  /** The failure domain (rack, power feed); a worker without one is a domain of its own. */
  domain?: string;
  capacityBytes: number;
}

export const replicationMax = 16;
export const workersMax = 2048;
/** Keeps pair counts within 16 bits: two workers share at most this many chains. */
export const targetsPerWorkerMax = 256;
export const targetsMax = 65_536;
const idMax = 0xffff_ffff;

export interface PlacementWorker {
  workerId: number;
  /** This worker's targets, larger capacity first, then by id: the order they are used in. */
  targets: PlacementTarget[];
  /** The group a chain holds at most once: its domain under the domain rule, else itself. */
  group: number;
}

export interface Cluster {
  /** By worker id. */
  workers: PlacementWorker[];
  replication: number;
  groupCount: number;
  /** At least `replication` failure domains exist, so every chain spans distinct domains. */
  domainRule: boolean;
  domainCount: number;
  workerOfTarget: Map<number, number>;
}

function invalid(message: string, details: Record<string, unknown> = {}): CairnError {
  return new CairnError(ErrorCode.InvalidArgument, message, details);
}

function isId(x: unknown): x is number {
  return Number.isInteger(x) && (x as number) >= 0 && (x as number) <= idMax;
}

export function checkReplication(replication: number): void {
  if (!Number.isInteger(replication) || replication < 1 || replication > replicationMax) {
    throw new CairnError(ErrorCode.BadOption, `replication ${replication} is not an integer in 1..${replicationMax}`, { replication });
  }
}

function checkTarget(t: PlacementTarget, i: number): void {
  const where = `targets[${i}]`;
  if (typeof t !== 'object' || t === null) throw invalid(`${where} is not an object`);
  if (!isId(t.targetId)) throw invalid(`${where}: targetId ${t.targetId} is not an integer in 0..${idMax}`);
  if (!isId(t.workerId)) throw invalid(`${where}: workerId ${t.workerId} is not an integer in 0..${idMax}`);
  if (!Number.isSafeInteger(t.capacityBytes) || t.capacityBytes < 0) throw invalid(`${where}: capacityBytes ${t.capacityBytes} is not a non-negative integer`);
  if (t.domain !== undefined && (typeof t.domain !== 'string' || t.domain === '')) throw invalid(`${where}: domain must be a non-empty string when present`);
}

function byCapacityThenId(a: PlacementTarget, b: PlacementTarget): number {
  return b.capacityBytes - a.capacityBytes || a.targetId - b.targetId;
}

/** Validates the targets and groups them; throws CAIRN_INVALID_ARGUMENT or CAIRN_BAD_OPTION. */
export function toCluster(targets: readonly PlacementTarget[], replication: number): Cluster {
  checkReplication(replication);
  if (!Array.isArray(targets)) throw invalid('targets is not an array');
  if (targets.length > targetsMax) throw invalid(`${targets.length} targets, more than ${targetsMax}`);
  const byWorker = new Map<number, PlacementTarget[]>();
  const workerOfTarget = new Map<number, number>();
  targets.forEach((t, i) => {
    checkTarget(t, i);
    if (workerOfTarget.has(t.targetId)) throw invalid(`target ${t.targetId} is listed twice`, { targetId: t.targetId });
    workerOfTarget.set(t.targetId, t.workerId);
    const list = byWorker.get(t.workerId) ?? [];
    list.push(t);
    byWorker.set(t.workerId, list);
  });
  if (byWorker.size > workersMax) throw invalid(`${byWorker.size} workers, more than ${workersMax}`);
  const domainGroups = new Map<string, number>();
  let domainCount = 0;
  const workers = [...byWorker.keys()].sort((a, b) => a - b).map((workerId) => {
    const list = byWorker.get(workerId)!;
    if (list.length > targetsPerWorkerMax) throw invalid(`worker ${workerId} has ${list.length} targets, more than ${targetsPerWorkerMax}`);
    const domain = list[0].domain;
    if (list.some((t) => t.domain !== domain)) throw invalid(`worker ${workerId}'s targets name different failure domains`, { workerId });
    let group = domain === undefined ? undefined : domainGroups.get(domain);
    if (group === undefined) {
      group = domainCount++;
      if (domain !== undefined) domainGroups.set(domain, group);
    }
    return { workerId, targets: [...list].sort(byCapacityThenId), group };
  });
  const domainRule = domainCount >= replication;
  if (!domainRule) workers.forEach((w, i) => (w.group = i));
  return { workers, replication, groupCount: domainRule ? domainCount : workers.length, domainRule, domainCount, workerOfTarget };
}
