// A master's metrics fed as work happens (the gauges read at scrape time are in http.ts): the
// journal's proposals, batches, syncs, leader changes, checkpoints and Raft traffic by peer,
// metadata operations by op with their latency, and RPC calls by method.

import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { JournalMetrics } from '../journal/metrics.ts';
import { BoundedLabel, batchBuckets, latencyBuckets, longDurationBuckets, processRegistry, rpcMetrics } from '../metrics.ts';
import type { OpsHttpOptions } from '../ops-http.ts';
import type { RpcMetrics } from '../rpc/index.ts';

/** Peer ids kept as labels at most: masters are few, and ids past this count as 'other'. */
const peerLabelsMax = 16;

export class MasterMetrics {
  readonly registry: Registry;
  readonly journal: JournalMetrics;
  readonly rpcServer: RpcMetrics;
  readonly rpcClient: RpcMetrics;
  private readonly metaOps: Counter<'kind' | 'op' | 'result'>;
  private readonly metaSeconds: Histogram<'kind' | 'op'>;
  private readonly results = new BoundedLabel();
  /** How /metrics is served (its bearer token). */
  readonly httpOptions: OpsHttpOptions;

  constructor(backend: 'raft' | 'zookeeper', httpOptions: OpsHttpOptions = {}) {
    this.httpOptions = httpOptions;
    this.registry = processRegistry();
    const rpc = rpcMetrics(this.registry);
    this.rpcServer = rpc.server;
    this.rpcClient = rpc.client;
    this.journal = journalMetrics(this.registry, backend);
    this.metaOps = new Counter({
      name: 'cairn_meta_operations_total',
      help: "metadata operations clients asked of this master (kind: mutate or query; op: the command's or query's op, 'invalid' when it failed validation), by result ('ok' or the error code)",
      labelNames: ['kind', 'op', 'result'],
      registers: [this.registry],
    });
    this.metaSeconds = new Histogram({
      name: 'cairn_meta_operation_seconds',
      help: 'how long metadata operations took on this master, from the request to the answer (journal commit or read barrier included)',
      labelNames: ['kind', 'op'],
      buckets: latencyBuckets,
      registers: [this.registry],
    });
  }

  /** One meta.mutate or meta.query finished. `op` comes from a validated command, so its values are bounded. */
  metaOp(kind: 'mutate' | 'query', op: string, result: string, seconds: number): void {
    this.metaOps.inc({ kind, op, result: this.results.of(result) });
    this.metaSeconds.observe({ kind, op }, seconds);
  }
}

function journalMetrics(registry: Registry, backend: 'raft' | 'zookeeper'): JournalMetrics {
  const registers = [registry];
  const proposals = new Counter({ name: 'cairn_journal_proposals_total', help: 'entries proposed to the journal on this master while it led', registers });
  const batchEntries = new Histogram({
    name: 'cairn_journal_batch_entries',
    help: backend === 'raft' ? 'entries per WAL write (one fsync each; 0: a vote or term written alone)' : 'entries per batch appended to ZooKeeper',
    buckets: [0, ...batchBuckets],
    registers,
  });
  const writeSeconds = new Histogram({
    name: backend === 'raft' ? 'cairn_journal_fsync_seconds' : 'cairn_journal_zookeeper_write_seconds',
    help: backend === 'raft' ? 'how long a WAL write and its fsync took' : 'how long an append of a batch to ZooKeeper took, sent to acknowledged',
    buckets: latencyBuckets,
    registers,
  });
  const leaderChanges = new Counter({ name: 'cairn_journal_leader_changes_total', help: 'leaders this master has seen take over (itself included), since it started', registers });
  const checkpointSeconds = new Histogram({ name: 'cairn_journal_checkpoint_seconds', help: 'how long writing a checkpoint (snapshot of the metadata) took', buckets: longDurationBuckets, registers });
  const checkpointBytes = new Gauge({ name: 'cairn_journal_checkpoint_bytes', help: 'size of the latest checkpoint this master wrote (0: none since it started)', registers });
  const snapshotsInstalled = new Counter({ name: 'cairn_journal_snapshots_installed_total', help: "snapshots from another master (Raft: the leader's; ZooKeeper: a peer's checkpoint) that replaced this master's state, since it started", registers });
  const snapshotInstalledBytes = new Gauge({ name: 'cairn_journal_snapshot_installed_bytes', help: 'size of the latest snapshot installed from another master (0: none since it started)', registers });
  const peers = new BoundedLabel(peerLabelsMax);
  const sentMessages = new Counter({ name: 'cairn_journal_peer_sent_messages_total', help: 'Raft messages sent to each peer master', labelNames: ['peer'], registers });
  const sentBytes = new Counter({ name: 'cairn_journal_peer_sent_bytes_total', help: 'bytes of Raft messages (entries and snapshot data, estimated) sent to each peer master', labelNames: ['peer'], registers });
  const receivedMessages = new Counter({ name: 'cairn_journal_peer_received_messages_total', help: 'Raft messages received from each peer master', labelNames: ['peer'], registers });
  return {
    proposed: () => proposals.inc(),
    persisted(entries, seconds) {
      batchEntries.observe(entries);
      writeSeconds.observe(seconds);
    },
    leaderChanged: () => leaderChanges.inc(),
    checkpointed(seconds, bytes) {
      checkpointSeconds.observe(seconds);
      checkpointBytes.set(bytes);
    },
    snapshotInstalled(bytes) {
      snapshotsInstalled.inc();
      snapshotInstalledBytes.set(bytes);
    },
    sent(peer, messages, bytes) {
      const labels = { peer: peers.of(String(peer)) };
      sentMessages.inc(labels, messages);
      sentBytes.inc(labels, bytes);
    },
    received(peer, messages) {
      receivedMessages.inc({ peer: peers.of(String(peer)) }, messages);
    },
  };
}
