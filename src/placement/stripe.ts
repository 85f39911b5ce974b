// File striping: a file's shuffle seed picks its stripe (stripeWidth chains of the table, in a
// seeded order), chunk i lives on stripe[i mod width], and a byte range splits into chunk pieces.

import { CairnError, ErrorCode } from '../errors.ts';
import type { Layout } from '../meta/commands.ts';
import { PlacementPrng } from './prng.ts';

/** The most pieces one chunkRange call returns: split larger ranges. */
export const chunkRangePiecesMax = 1 << 20;
/** The most chains a table may have for fileChains (the PRNG draws stay exact below 2^21). */
const tableChainsMax = 1 << 20;

export interface ChunkPiece {
  chunkIndex: number;
  offsetInChunk: number;
  length: number;
}

function invalid(message: string, details: Record<string, unknown> = {}): CairnError {
  return new CairnError(ErrorCode.InvalidArgument, message, details);
}

function checkCount(name: string, x: number): void {
  if (!Number.isSafeInteger(x) || x < 0) throw invalid(`${name} ${x} is not a non-negative integer`, { [name]: x });
}

/**
 * The chains a file is striped over: a seeded Fisher-Yates shuffle of the table's chain ids,
 * cut to the first stripeWidth (at most the table's size). Same arguments, same stripe.
 */
export function fileChains(chainIds: readonly number[], stripeWidth: number, shuffleSeed: number): number[] {
  if (!Array.isArray(chainIds) || chainIds.length === 0) throw invalid('the chain table has no chains');
  if (chainIds.length > tableChainsMax) throw invalid(`the chain table has ${chainIds.length} chains, more than ${tableChainsMax}`);
  if (new Set(chainIds).size !== chainIds.length) throw invalid('the chain table lists a chain twice');
  if (!Number.isInteger(stripeWidth) || stripeWidth < 1) throw new CairnError(ErrorCode.BadOption, `stripe width ${stripeWidth} is not a positive integer`, { stripeWidth });
  if (!Number.isInteger(shuffleSeed) || shuffleSeed < 0 || shuffleSeed > 0xffff_ffff) throw invalid(`shuffle seed ${shuffleSeed} is not an integer in 0..2^32-1`);
  const ids = [...chainIds];
  const width = Math.min(stripeWidth, ids.length);
  const prng = new PlacementPrng(shuffleSeed);
  for (let i = 0; i < width; i++) {
    const j = i + prng.int(ids.length - i);
    [ids[i], ids[j]] = [ids[j], ids[i]];
  }
  return ids.slice(0, width);
}

/** The chain that holds chunk `chunkIndex` of a file with this stripe. */
export function chainOfChunk(stripe: readonly number[], chunkIndex: number): number {
  if (!Array.isArray(stripe) || stripe.length === 0) throw invalid('the stripe has no chains');
  checkCount('chunkIndex', chunkIndex);
  return stripe[chunkIndex % stripe.length];
}

/** Chunk indexes grouped by the chain of this stripe that holds them, each group in the order given. */
export function chunksByChain(stripe: readonly number[], chunkIndexes: Iterable<number>): Map<number, number[]> {
  const byChain = new Map<number, number[]>();
  for (const index of chunkIndexes) {
    const chainId = chainOfChunk(stripe, index);
    let list = byChain.get(chainId);
    if (list === undefined) byChain.set(chainId, (list = []));
    list.push(index);
  }
  return byChain;
}

/** The chunk pieces bytes [offset, offset + length) cover, in order; none for length 0. */
export function chunkRange(layout: Pick<Layout, 'chunkSizeBytes'>, offset: number, length: number): ChunkPiece[] {
  const size = layout.chunkSizeBytes;
  if (!Number.isSafeInteger(size) || size < 1) throw new CairnError(ErrorCode.BadOption, `chunk size ${size} is not a positive integer`, { chunkSizeBytes: size });
  checkCount('offset', offset);
  checkCount('length', length);
  if (!Number.isSafeInteger(offset + length)) throw invalid(`the range ends past 2^53-1 bytes`, { offset, length });
  if (length === 0) return [];
  const first = Math.floor(offset / size);
  const last = Math.floor((offset + length - 1) / size);
  if (last - first + 1 > chunkRangePiecesMax) {
    throw invalid(`the range spans ${last - first + 1} chunks, more than ${chunkRangePiecesMax}: split it`, { offset, length });
  }
  const pieces: ChunkPiece[] = [];
  for (let i = first; i <= last; i++) {
    const start = Math.max(offset, i * size);
    const end = Math.min(offset + length, (i + 1) * size);
    pieces.push({ chunkIndex: i, offsetInChunk: start - i * size, length: end - start });
  }
  return pieces;
}
