// Placement: which targets form each chain (buildChains, extendChains), how even a table is
// (chainBalance, formatBalance), and which chains a file's chunks live on (fileChains,
// chainOfChunk, chunkRange). Pure functions: no I/O, clock or unseeded randomness.

export { replicationMax, targetsMax, targetsPerWorkerMax, workersMax, type PlacementTarget } from './cluster.ts';
export { buildChains, extendChains, movesMaxDefault, UnusedReason, type ChainPlan, type PlacementOptions, type UnusedTarget } from './build.ts';
export { chainBalance, formatBalance, type ChainBalance, type Range } from './balance.ts';
export { chainOfChunk, chunksByChain, chunkRange, chunkRangePiecesMax, fileChains, type ChunkPiece } from './stripe.ts';
export { domainOf, pickReplacement, type PlacedMember, type ReplacementCandidate, type ReplacementPick } from './replace.ts';
