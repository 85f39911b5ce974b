// Whether the newest usable snapshot file and the replayed WAL together hold the whole log. Pure:
// the caller has loaded both and decides what to close.

import path from 'node:path';
import type { SnapshotMeta } from '../../raft/index.ts';
import { JournalError, JournalErrorCode, rebuildFromPeersHint } from './errors.ts';

/**
 * The WAL records a snapshot only after its file is durable, and its replay drops the entries that
 * snapshot covers. So a snapshot file older than the WAL's newest snapshot record (the newer files
 * were damaged or deleted) leaves entries that no file and no record holds: a node starting from
 * it would have lost entries it acknowledged. Throws CAIRN_SNAPSHOT_CORRUPT naming what is missing.
 */
export function checkSnapshotReachesWal(
  walSnapshot: SnapshotMeta | undefined,
  fileSnapshot: SnapshotMeta | undefined,
  skipped: string[],
  dir: string,
): void {
  const needed = walSnapshot?.index ?? 0;
  const have = fileSnapshot?.index ?? 0;
  if (needed <= have) return;
  const fallback = fileSnapshot === undefined ? 'no older snapshot file is usable' : `the usable snapshot at index ${have} is older`;
  const missing =
    skipped.length > 0 ? `snapshot ${skipped.join('; snapshot ')}` : `no snapshot file in ${path.join(dir, 'snap')} reaches index ${needed}`;
  throw new JournalError(
    JournalErrorCode.SnapshotCorrupt,
    `${missing}; the WAL holds the log only after its snapshot at index ${needed}, and ${fallback}, so starting would leave a hole in the log; ${rebuildFromPeersHint}`,
  );
}
