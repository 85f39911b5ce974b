// Membership changes as pure functions: whether a change is allowed, and the membership after it.
// One change at a time (Raft thesis §4.1), so any two successive memberships share a majority.

import { CairnError, ErrorCode } from '../errors.ts';
import { ConfChangeType, type ConfChange, type ConfState, type NodeId } from './types.ts';

/** Throws CAIRN_INVALID_ARGUMENT for a change that makes no sense in `conf`. */
export function validateConfChange(conf: ConfState, cc: ConfChange): void {
  if (!(cc.node > 0)) throw new CairnError(ErrorCode.InvalidArgument, `invalid node id ${cc.node}`);
  const voter = conf.voters.includes(cc.node);
  if (cc.type === ConfChangeType.Remove) {
    if (!voter && !conf.learners.includes(cc.node)) throw new CairnError(ErrorCode.InvalidArgument, `node ${cc.node} is not a member`);
    if (voter && conf.voters.length === 1) throw new CairnError(ErrorCode.InvalidArgument, 'cannot remove the last voter');
  }
  if (cc.type === ConfChangeType.AddLearner && voter) throw new CairnError(ErrorCode.InvalidArgument, `node ${cc.node} is already a voter`);
}

/** The membership after one change. */
export function nextConf(conf: ConfState, cc: ConfChange): ConfState {
  const voters = new Set(conf.voters);
  const learners = new Set(conf.learners);
  switch (cc.type) {
    case ConfChangeType.AddLearner:
      if (!voters.has(cc.node)) learners.add(cc.node);
      break;
    case ConfChangeType.AddVoter:
      learners.delete(cc.node);
      voters.add(cc.node);
      break;
    case ConfChangeType.Remove:
      voters.delete(cc.node);
      learners.delete(cc.node);
      break;
  }
  const byId = (a: NodeId, b: NodeId): number => a - b;
  return { voters: [...voters].sort(byId), learners: [...learners].sort(byId) };
}
