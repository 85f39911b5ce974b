// The journal every metadata change goes through, and its embedded Raft backend.

export type { Journal, JournalStatus, MemberStatus, NodeInfo, Restorer, StateMachine } from './journal.ts';
export { RaftJournal, type RaftJournalOptions } from './raft/raft-journal.ts';
