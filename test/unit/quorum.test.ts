// Tests of the majority arithmetic: commit indexes and vote tallies for odd and even groups.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { VoteResult, committedIndex, quorumSize, tallyVotes } from '../../src/raft/quorum.ts';

const matchOf = (m: Record<number, number>) => (id: number) => m[id] ?? 0;

test('quorumSize is a strict majority', () => {
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7].map(quorumSize), [1, 2, 2, 3, 3, 4, 4]);
});

test('committedIndex is the highest index a majority has matched', () => {
  assert.equal(committedIndex([], matchOf({})), 0);
  assert.equal(committedIndex([1], matchOf({ 1: 7 })), 7);
  assert.equal(committedIndex([1, 2], matchOf({ 1: 7, 2: 5 })), 5);
  assert.equal(committedIndex([1, 2, 3], matchOf({ 1: 7, 2: 5, 3: 2 })), 5);
  assert.equal(committedIndex([1, 2, 3], matchOf({ 1: 7, 2: 7, 3: 7 })), 7);
  assert.equal(committedIndex([1, 2, 3, 4], matchOf({ 1: 9, 2: 8, 3: 4, 4: 1 })), 4, 'three of four must hold it');
  assert.equal(committedIndex([1, 2, 3, 4, 5], matchOf({ 1: 9, 2: 8, 3: 6, 4: 1, 5: 0 })), 6);
  assert.equal(committedIndex([3, 1, 2], matchOf({ 1: 1, 2: 3, 3: 2 })), 2, 'the order of voters does not matter');
  assert.equal(committedIndex([1, 2, 3], matchOf({ 1: 5 })), 0, 'unknown progress counts as 0');
});

test('tallyVotes wins with a majority of grants, loses once a majority is out of reach', () => {
  const votes = (v: Record<number, boolean>) => new Map(Object.entries(v).map(([k, b]) => [Number(k), b]));
  assert.equal(tallyVotes([1], votes({ 1: true })), VoteResult.Won);
  assert.equal(tallyVotes([1, 2, 3], votes({ 1: true })), VoteResult.Pending);
  assert.equal(tallyVotes([1, 2, 3], votes({ 1: true, 2: true })), VoteResult.Won);
  assert.equal(tallyVotes([1, 2, 3], votes({ 1: true, 2: false })), VoteResult.Pending);
  assert.equal(tallyVotes([1, 2, 3], votes({ 1: true, 2: false, 3: false })), VoteResult.Lost);
  assert.equal(tallyVotes([1, 2, 3, 4], votes({ 1: true, 2: true })), VoteResult.Pending, 'two of four is no majority');
  assert.equal(tallyVotes([1, 2, 3, 4], votes({ 1: true, 2: false, 3: false })), VoteResult.Lost, 'three is out of reach');
  assert.equal(tallyVotes([1, 2, 3, 4, 5], votes({ 1: true, 2: false, 3: false })), VoteResult.Pending);
  assert.equal(tallyVotes([1, 2, 3], votes({ 1: true, 7: true, 8: true })), VoteResult.Pending, 'non-voters are ignored');
  assert.equal(tallyVotes([1, 2, 3], votes({ 4: false, 5: false, 6: false })), VoteResult.Pending);
});
