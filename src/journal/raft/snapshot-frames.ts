// The bytes of a journal snapshot: length-prefixed frames (u32 little-endian length, then the
// bytes), written and read one at a time so neither side ever holds the snapshot as one buffer.

import { Buffer } from 'node:buffer';
import { assert } from '../../errors.ts';
import type { SnapshotData } from '../../raft/index.ts';
import { JournalError, JournalErrorCode } from './errors.ts';

/** No frame is larger: state-machine chunks are about 1 MiB; this catches garbage lengths. */
const frameBytesMax = 256 << 20;

/** Each frame as its length prefix and then its bytes (no copy of the frame). */
export function* framePieces(frames: Iterable<Uint8Array>): Generator<Uint8Array> {
  for (const f of frames) {
    assert(f.byteLength <= frameBytesMax, `snapshot frame of ${f.byteLength} bytes exceeds ${frameBytesMax}`);
    const len = Buffer.allocUnsafe(4);
    len.writeUInt32LE(f.byteLength, 0);
    yield len;
    yield f;
  }
}

/** The frames of `data`, read lazily; a frame running past the end is reported as corruption. */
export function* readFrames(data: SnapshotData): Generator<Uint8Array> {
  let off = 0;
  while (off < data.byteLength) {
    if (off + 4 > data.byteLength) throw corrupt(`a frame header at offset ${off} is cut short`);
    const len = Buffer.from(data.read(off, 4)).readUInt32LE(0);
    if (len > frameBytesMax || off + 4 + len > data.byteLength) throw corrupt(`the frame at offset ${off} declares ${len} bytes, past the end`);
    yield data.read(off + 4, len);
    off += 4 + len;
  }
}

function corrupt(why: string): JournalError {
  return new JournalError(JournalErrorCode.SnapshotCorrupt, `journal snapshot is damaged: ${why}`);
}
