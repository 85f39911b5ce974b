// Majority arithmetic for commit indexes and elections.

/** The largest index that a majority of `voters` has matched. */
export function committedIndex(voters: Iterable<number>, match: (id: number) => number): number {
  // Runs on every append acknowledgement: an insertion sort of a handful of numbers, no closures.
  const matched: number[] = [];
  for (const id of voters) {
    const m = match(id);
    let i = matched.length;
    matched.push(m);
    while (i > 0 && matched[i - 1] < m) {
      matched[i] = matched[i - 1];
      i--;
    }
    matched[i] = m;
  }
  if (matched.length === 0) return 0;
  return matched[Math.floor(matched.length / 2)];
}

export const VoteResult = { Pending: 'pending', Won: 'won', Lost: 'lost' } as const;
export type VoteResult = (typeof VoteResult)[keyof typeof VoteResult];

/** Tallies granted and rejected votes among `voters`; unknown voters are ignored. */
export function tallyVotes(voters: readonly number[], votes: ReadonlyMap<number, boolean>): VoteResult {
  const quorum = Math.floor(voters.length / 2) + 1;
  let granted = 0;
  let rejected = 0;
  for (const id of voters) {
    const v = votes.get(id);
    if (v === true) granted++;
    else if (v === false) rejected++;
  }
  if (granted >= quorum) return VoteResult.Won;
  if (rejected > voters.length - quorum) return VoteResult.Lost;
  return VoteResult.Pending;
}

export function quorumSize(voterCount: number): number {
  return Math.floor(voterCount / 2) + 1;
}
