// SPDX-License-Identifier: Apache-2.0
'use strict';
// Two (or three) QUICServers in this one process, over real QUIC on 127.0.0.1.
const test = require('node:test');
const assert = require('node:assert/strict');
const { scratch, servers, next, until, link, pattern } = require('./helpers');

test('a pattern given to one server reaches its peer, seed-shaped', async (t) => {
  const dir = await scratch(['a', 'b'], t);
  const { a, b } = await servers(t, dir, ['a', 'b']);
  await link(a, b, 'b');
  const got = next(b, 'pattern:received', (e) => e.pattern.id === 'p1');
  const res = await a.syncPattern(pattern('p1'));
  assert.deepEqual(res, { outcome: 'inserted', seq: 1 });
  const { pattern: p, sourceId } = await got;
  assert.equal(sourceId, 'a');
  assert.equal(p.type, 'test_execution');
  assert.deepEqual(p.data, { testCase: 'UserLogin', result: 'passed', n: 'p1' });
  assert.deepEqual(p.metadata.tags, ['unit', 'auth']);
  assert.match(p.metadata.checksum, /^[0-9a-f]{64}$/);
  assert.deepEqual(b.get('p1'), p);
});

test('syncPattern with peer ids reaches only those peers, and is not relayed', async (t) => {
  const dir = await scratch(['a', 'b', 'c'], t);
  const { a, b, c } = await servers(t, dir, ['a', 'b', 'c']);
  await link(a, b, 'b');
  await link(a, c, 'c');
  await link(b, c, 'c');
  await a.syncPattern(pattern('only-b'), ['b']);
  // A pattern for everyone after it: once c has that one, it would have had the first too.
  await a.syncPattern(pattern('everyone'));
  await until(() => b.get('everyone') && c.get('everyone'), 'the broadcast pattern');
  await until(() => b.get('only-b'), 'the targeted pattern at b');
  // b got it from a, scoped: b does not send it on to c either.
  await until(() => b.getState().peers.get('c').lag === 0, 'b to have sent c everything');
  assert.equal(c.get('only-b'), undefined);
  assert.equal(a.get('only-b').id, 'only-b');
});

test('a batch of 1,000 arrives whole', async (t) => {
  const dir = await scratch(['a', 'b'], t);
  const { a, b } = await servers(t, dir, ['a', 'b']);
  await link(a, b, 'b');
  const batch = Array.from({ length: 1000 }, (_, i) => pattern(`batch-${i}`));
  const results = await a.syncPatterns(batch);
  assert.equal(results.length, 1000);
  assert.ok(results.every((r) => r.outcome === 'inserted'));
  assert.deepEqual(results.map((r) => r.seq), batch.map((_, i) => i + 1));
  await until(() => b.getState().store.patterns === 1000, 'b to hold 1000 patterns');
  assert.equal(b.getState().store.digest, a.getState().store.digest);
  assert.equal(b.getCachedPatterns().length, 1000);
});

test('a newer version replaces, an older one is ignored', async (t) => {
  const dir = await scratch(['a', 'b'], t);
  const { a, b } = await servers(t, dir, ['a', 'b']);
  await link(a, b, 'b');
  await a.syncPattern(pattern('v', { version: 2, data: { v: 2 } }));
  await until(() => b.get('v'), 'v2 at b');
  const newer = await a.syncPattern(pattern('v', { version: 3, data: { v: 3 } }));
  assert.equal(newer.outcome, 'updated');
  await until(() => b.get('v')?.version === 3, 'v3 at b');
  assert.deepEqual(b.get('v').data, { v: 3 });
  // Older, given to either side: ignored, and nothing changes anywhere.
  const older = await a.syncPattern(pattern('v', { version: 1, data: { v: 1 } }));
  assert.deepEqual(older, { outcome: 'stale', seq: 0 });
  const olderAtB = await b.syncPattern(pattern('v', { version: 2, data: { v: 'x' } }));
  assert.equal(olderAtB.outcome, 'stale');
  assert.deepEqual(a.get('v').data, { v: 3 });
  assert.deepEqual(b.get('v').data, { v: 3 });
});

test('delete reaches the peer as pattern:deleted', async (t) => {
  const dir = await scratch(['a', 'b'], t);
  const { a, b } = await servers(t, dir, ['a', 'b']);
  await link(a, b, 'b');
  await a.syncPattern(pattern('gone'));
  await until(() => b.get('gone'), 'the pattern at b');
  const deleted = next(b, 'pattern:deleted', (e) => e.patternId === 'gone');
  const res = await a.delete('gone');
  assert.equal(res.outcome, 'updated');
  const e = await deleted;
  assert.equal(e.sourceId, 'a');
  assert.equal(e.version, 2);
  assert.equal(b.get('gone'), undefined);
  await assert.rejects(a.delete('gone'), { code: 'AGS_ERR_NOT_FOUND', field: 'id' });
});

test('query filters by type, tag, agentId, since and limit', async (t) => {
  const dir = await scratch(['a'], t);
  const { a } = await servers(t, dir, ['a']);
  await a.syncPatterns([
    pattern('q1', { type: 'coverage_gap' }),
    pattern('q2', { agentId: 'other', metadata: { source: 's', tags: ['e2e'] } }),
    pattern('q3'),
  ]);
  assert.deepEqual(a.query({ type: 'coverage_gap' }).map((p) => p.id), ['q1']);
  assert.deepEqual(a.query({ tag: 'e2e' }).map((p) => p.id), ['q2']);
  assert.deepEqual(a.query({ agentId: 'other' }).map((p) => p.id), ['q2']);
  assert.deepEqual(a.query({ since: 1 }).map((p) => p.id), ['q2', 'q3']);
  assert.deepEqual(a.query({ limit: 2 }).map((p) => p.id), ['q1', 'q2']);
  assert.deepEqual(a.query().map((p) => p.id), ['q1', 'q2', 'q3']);
  assert.throws(() => a.query({ limit: -1 }), /filter.limit must be a non-negative integer/);
  assert.throws(() => a.query({ type: 7 }), /filter.type must be a string/);
});
