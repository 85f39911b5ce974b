import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { crc32c } from '@node-rs/crc32';
import { buildChunkHeader } from '../../src/worker/chunk-file.ts';
import { crc32cCombine, crc32cPieces } from '../../src/worker/crc32c-pieces.ts';
import { firstBadBlock } from '../../src/worker/chunk-file.ts';

test('crc32cCombine gives the CRC of the concatenation, empty parts included', () => {
  for (const [a, b] of [[0, 0], [0, 5], [5, 0], [1, 1], [3, 4096], [65536, 65536], [100_000, 12_345], [7, 1 << 20]]) {
    const x = randomBytes(a);
    const y = randomBytes(b);
    assert.equal(crc32cCombine(crc32c(x), crc32c(y), b), crc32c(Buffer.concat([x, y])), `${a} + ${b} bytes`);
  }
});

test('crc32cPieces cuts where the blocks are cut, and its whole CRC is the data\'s', () => {
  const data = randomBytes(300_000);
  for (const [first, piece] of [[65536, 65536], [1000, 65536], [512, 512], [65536, 4096], [400_000, 65536], [0, 4096], [1, 1], [4096, 4096], [7, 12_289]]) {
    const p = crc32cPieces(data, first, piece);
    assert.equal(p.whole, crc32c(data), `first ${first}, pieces of ${piece}`);
    let off = 0;
    for (let i = 0; i < p.crcs.length; i++) {
      const take = Math.min(i === 0 ? p.firstBytes : piece, data.length - off);
      assert.equal(p.crcs[i], crc32c(data.subarray(off, off + take)), `piece ${i}`);
      off += take;
    }
    assert.equal(off, data.length);
  }
  assert.deepEqual(crc32cPieces(new Uint8Array(0), 4096, 4096), { bytes: 0, firstBytes: 4096, pieceBytes: 4096, crcs: new Uint32Array(0), whole: 0 });
  // One flipped bit anywhere changes the whole CRC, and the CRC of its piece only.
  const bad = Buffer.from(data);
  bad[123_456] ^= 0x10;
  const good = crc32cPieces(data, 4096, 4096);
  const damaged = crc32cPieces(bad, 4096, 4096);
  assert.notEqual(damaged.whole, crc32c(data));
  assert.deepEqual([...damaged.crcs.keys()].filter((i) => damaged.crcs[i] !== good.crcs[i]), [Math.floor(123_456 / 4096)]);
});

test('firstBadBlock names the first damaged block of what was read, from any block on', () => {
  const bs = 4096;
  const data = randomBytes(10 * bs + 100);
  const { header } = buildChunkHeader({ id: { inodeId: 1, index: 0 }, version: 1, chainVersion: 1, lengthBytes: data.length, blockSizeBytes: bs }, [data]);
  assert.equal(firstBadBlock(header, data, 0), undefined);
  assert.equal(firstBadBlock(header, data.subarray(3 * bs), 3), undefined);
  const bad = Buffer.from(data);
  bad[7 * bs + 5] ^= 1;
  bad[9 * bs] ^= 1;
  assert.equal(firstBadBlock(header, bad, 0), 7 * bs);
  assert.equal(firstBadBlock(header, bad.subarray(8 * bs), 8), 9 * bs);
  assert.equal(firstBadBlock(header, bad.subarray(2 * bs, 3 * bs), 2), undefined);
});

test('a chunk header built from known piece CRCs is the one built from the bytes', () => {
  const bs = 4096;
  const old = randomBytes(50_000);
  for (const [at, len] of [[0, 50_000], [0, 4096], [100, 9000], [4096, 8192], [4095, 1], [49_000, 5000], [60_000, 3000], [0, 0]]) {
    const data = randomBytes(len);
    const length = Math.max(old.length, at + len);
    const parts = [old.subarray(0, Math.min(at, old.length)), ...(at > old.length ? [new Uint8Array(at - old.length)] : []), data, ...(at + len < old.length ? [old.subarray(at + len)] : [])].filter((p) => p.length > 0);
    const fields = { id: { inodeId: 7, index: 2 }, version: 3, chainVersion: 1, lengthBytes: length, blockSizeBytes: bs };
    const plain = buildChunkHeader(fields, parts);
    const pieces = crc32cPieces(data, bs - (at % bs), bs);
    const fast = buildChunkHeader(fields, parts, { part: data, pieces });
    assert.deepEqual(Buffer.from(fast.bytes), Buffer.from(plain.bytes), `data of ${len} bytes at ${at}`);
    assert.equal(fast.header.crc32c, crc32c(Buffer.concat(parts)));
  }
});
