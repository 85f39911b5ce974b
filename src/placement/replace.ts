// The choice of a replacement target for a chain that lost a member for good: a free target on a
// worker the chain does not use, in a failure domain it does not use when there is one, on the
// least loaded worker. Pure: the cluster manager gives it the free live targets it knows of.

/** A free target (in no chain) on a live worker in service, as a replacement candidate. */
export interface ReplacementCandidate {
  targetId: number;
  workerId: number;
  /** The failure domain; a worker without one is a domain of its own. */
  domain?: string;
  capacityBytes: number;
  /** Bytes the target holds (its worker's last heartbeat); 0 when unknown. */
  usedBytes: number;
}

/** A member that stays in the chain, by where it lives. */
export interface PlacedMember {
  workerId: number;
  domain?: string;
}

export interface ReplacementPick {
  target: ReplacementCandidate;
  /** The pick keeps the chain's members in distinct failure domains. */
  distinctDomain: boolean;
}

/** A worker's failure domain; a worker without one is a domain of its own. */
export function domainOf(x: { workerId: number; domain?: string }): string {
  return x.domain === undefined || x.domain === '' ? `\0worker:${x.workerId}` : x.domain;
}

/**
 * The best candidate for a chain whose remaining members are `kept`, or undefined when none is on
 * a worker outside the chain. In order of preference: a failure domain the chain does not use; the
 * worker with the fewest chain members (`load`, by worker id, so replacements spread); the emptiest
 * target; the largest; the lowest id (deterministic).
 */
export function pickReplacement(kept: readonly PlacedMember[], candidates: readonly ReplacementCandidate[], load: ReadonlyMap<number, number>): ReplacementPick | undefined {
  const workers = new Set(kept.map((m) => m.workerId));
  const domains = new Set(kept.map(domainOf));
  let best: ReplacementPick | undefined;
  for (const target of candidates) {
    if (workers.has(target.workerId)) continue;
    const pick = { target, distinctDomain: !domains.has(domainOf(target)) };
    if (best === undefined || better(pick, best, load)) best = pick;
  }
  return best;
}

function better(a: ReplacementPick, b: ReplacementPick, load: ReadonlyMap<number, number>): boolean {
  if (a.distinctDomain !== b.distinctDomain) return a.distinctDomain;
  const la = load.get(a.target.workerId) ?? 0;
  const lb = load.get(b.target.workerId) ?? 0;
  if (la !== lb) return la < lb;
  if (a.target.usedBytes !== b.target.usedBytes) return a.target.usedBytes < b.target.usedBytes;
  if (a.target.capacityBytes !== b.target.capacityBytes) return a.target.capacityBytes > b.target.capacityBytes;
  return a.target.targetId < b.target.targetId;
}
