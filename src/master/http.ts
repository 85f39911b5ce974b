// A master's HTTP face for operators: /metrics in Prometheus text format and /healthz.

import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { Journal } from '../journal/index.ts';
import type { MetaStateMachine } from '../meta/state-machine.ts';
import { startOpsHttp, type HttpEndpoint } from '../ops-http.ts';

export type { HttpEndpoint };

export async function startHttp(host: string, port: number, journal: Journal, sm: MetaStateMachine): Promise<HttpEndpoint> {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'cairn_master_' });
  const gauge = (name: string, help: string, read: () => number): void => {
    new Gauge({ name, help, registers: [registry], collect() { this.set(read()); } });
  };
  gauge('cairn_journal_term', 'current Raft term', () => journal.status().term);
  gauge('cairn_journal_is_leader', '1 on the leader', () => (journal.isLeader() ? 1 : 0));
  gauge('cairn_journal_commit_index', 'highest committed log index known here', () => journal.status().commitIndex);
  gauge('cairn_journal_applied_index', 'highest log index applied here', () => journal.status().appliedIndex);
  gauge('cairn_journal_snapshot_index', 'index of the newest checkpoint', () => journal.status().snapshotIndex);
  gauge('cairn_journal_log_entries', 'entries in the in-memory log', () => {
    const st = journal.status();
    return Math.max(0, st.lastIndex - st.firstIndex + 1);
  });
  gauge('cairn_meta_inodes', 'inodes in the namespace', () => sm.state.statfs().inodes);
  gauge('cairn_meta_logical_bytes', 'sum of file lengths', () => sm.state.statfs().logicalBytes);

  return startOpsHttp(host, port, registry, () => {
    const st = journal.status();
    return { ok: st.leader !== undefined, role: st.role, leader: st.leader, term: st.term, appliedIndex: st.appliedIndex };
  });
}
