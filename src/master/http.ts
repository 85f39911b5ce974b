// A master's HTTP face for operators: /metrics in Prometheus text format and /healthz.

import { Gauge } from 'prom-client';
import { clusterMetrics } from './cluster-metrics.ts';
import type { MasterMetrics } from './metrics.ts';
import { counterOf, gaugeOf, processRegistry } from '../metrics.ts';
import type { Journal } from '../journal/index.ts';
import type { MetaStateMachine } from '../meta/state-machine.ts';
import { startOpsHttp, type ExtraRoutes, type HttpEndpoint } from '../ops-http.ts';
import type { QuarantinedTarget, QuarantineReport } from './quarantine.ts';
import type { MasterLoad } from './server.ts';

export type { HttpEndpoint };

/** `extra`: the dashboard's routes. `metrics`: the registry the master's journal, RPC and metadata operations feed (a bare one when absent: tests). */
export async function startHttp(host: string, port: number, journal: Journal, sm: MetaStateMachine, quarantine: () => QuarantineReport, load: () => MasterLoad, metrics?: MasterMetrics, extra?: ExtraRoutes): Promise<HttpEndpoint> {
  const registry = metrics?.registry ?? processRegistry();
  const gauge = (name: string, help: string, read: () => number): void => gaugeOf(registry, name, help, read);
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
  // The leader's latest quarantine audit (src/master/quarantine.ts); a follower reports none.
  const perTarget = (name: string, help: string, read: (t: QuarantinedTarget) => number): void => {
    new Gauge({
      name,
      help,
      labelNames: ['target'],
      registers: [registry],
      collect() {
        this.reset();
        for (const t of quarantine().targets) if (t.error === undefined) this.set({ target: String(t.targetId) }, read(t));
      },
    });
  };
  perTarget('cairn_quarantine_chunks', 'chunks of inodes the namespace does not know, kept on this target (latest audit; leader only)', (t) => t.chunks);
  perTarget('cairn_quarantine_bytes', 'bytes of those chunks on this target', (t) => t.bytes);
  perTarget('cairn_quarantine_inodes_ahead_of_counter', 'unknown inodes on this target at or past the inode counter (never purged)', (t) => t.aheadOfCounter);
  gauge('cairn_quarantine_targets_unreached', 'targets the latest audit could not list', () => quarantine().targetsUnreached);
  gauge('cairn_quarantine_audit_timestamp_seconds', 'when the latest quarantine audit ran (0: none on this master)', () => (quarantine().auditedMs ?? 0) / 1000);
  gauge('cairn_master_rpc_connections', 'RPC connections open', () => load().rpc.connections);
  gauge('cairn_master_rpc_request_bytes_held', 'bytes of requests held in memory (bounded by the request memory limit)', () => load().rpc.requestBytesHeld);
  gauge('cairn_master_rpc_connections_waiting', 'connections not read while their request waits for room in the request memory', () => load().rpc.connectionsWaiting);
  gauge('cairn_master_pending_calls', 'clients\' calls in progress (bounded by pendingCallsMax)', () => load().pendingCalls);
  // Counts kept by the RPC server and the call gate: the counter is set to them (they only grow).
  const counter = (name: string, help: string, read: () => number): void => counterOf(registry, name, help, read);
  counter('cairn_master_rpc_connections_refused_total', 'connections refused with CAIRN_OVERLOADED since start', () => load().rpc.connectionsRefused);
  counter('cairn_master_rpc_requests_refused_total', 'requests refused with CAIRN_OVERLOADED for memory since start', () => load().rpc.requestsRefused);
  counter('cairn_master_calls_refused_total', 'clients\' calls refused with CAIRN_OVERLOADED over pendingCallsMax since start', () => load().callsRefused);
  clusterMetrics(registry, () => sm.state.routing());

  return startOpsHttp(host, port, registry, () => {
    const st = journal.status();
    return { ok: st.leader !== undefined, role: st.role, leader: st.leader, term: st.term, appliedIndex: st.appliedIndex };
  }, extra, metrics?.httpOptions);
}
