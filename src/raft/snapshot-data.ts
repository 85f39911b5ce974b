// A snapshot's bytes, read piece by piece. The core only ever reads bounded chunks of a snapshot
// (to send them to a follower), so the bytes can live in a file instead of one giant buffer.

import type { IncomingSnapshotData, SnapshotData, SnapshotSink } from './types.ts';
import { assert } from '../errors.ts';
import { upperBound } from '../sorted.ts';

/** Snapshot bytes held in memory as one array (small snapshots, tests, the simulator). */
export function snapshotBytes(bytes: Uint8Array): SnapshotData {
  return {
    byteLength: bytes.byteLength,
    read: (offset, length) => {
      checkRange(offset, length, bytes.byteLength);
      return bytes.subarray(offset, offset + length);
    },
  };
}

/** Snapshot bytes as the chunks they arrived in, never joined into one array. */
export function chunkedSnapshotData(chunks: readonly Uint8Array[]): SnapshotData {
  const starts: number[] = [];
  let total = 0;
  for (const c of chunks) {
    starts.push(total);
    total += c.byteLength;
  }
  return {
    byteLength: total,
    read: (offset, length) => {
      checkRange(offset, length, total);
      const out = new Uint8Array(length);
      let i = upperBound(starts, offset) - 1;
      for (let done = 0; done < length; i++) {
        const from = offset + done - starts[i];
        const piece = chunks[i].subarray(from, from + length - done);
        out.set(piece, done);
        done += piece.byteLength;
      }
      return out;
    },
  };
}

/** Keeps an incoming snapshot's chunks in memory: tests and scenarios; real nodes pass a file-backed sink. */
export const memorySnapshotSink: SnapshotSink = {
  begin(): IncomingSnapshotData {
    const chunks: Uint8Array[] = [];
    return {
      write: (chunk) => void chunks.push(chunk),
      complete: () => chunkedSnapshotData(chunks),
      abort: () => void (chunks.length = 0),
    };
  },
};

/** All of a snapshot's bytes in one array: for small snapshots only (tests, the simulator). */
export function readAllSnapshotData(data: SnapshotData): Uint8Array {
  return data.read(0, data.byteLength);
}

function checkRange(offset: number, length: number, total: number): void {
  assert(Number.isSafeInteger(offset) && Number.isSafeInteger(length) && offset >= 0 && length >= 0 && offset + length <= total, `snapshot read [${offset}, +${length}) outside ${total} bytes`);
}
