// SPDX-License-Identifier: Apache-2.0
'use strict';
// Seed 000's events, with its payloads, from real servers.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { agentsync, scratch, servers, next, until, link, pattern, config } = require('./helpers');

test('peer:connected, sync:completed, pattern:received and peer:disconnected payloads', async (t) => {
  const dir = await scratch(['a', 'b'], t);
  const { a, b } = await servers(t, dir, ['a', 'b']);
  const connectedAtB = next(b, 'peer:connected', (e) => e.peerId === 'a');
  const c = await link(a, b, 'b');
  assert.deepEqual(Object.keys(c).sort(), ['address', 'peerId']);
  assert.equal(c.address, `127.0.0.1:${b.port}`);
  assert.match((await connectedAtB).address, /^127\.0\.0\.1:\d+$/);

  const completed = next(a, 'sync:completed', (e) => e.peerId === 'b');
  const received = next(b, 'pattern:received');
  await a.syncPatterns([pattern('e1'), pattern('e2')]);
  const done = await completed;
  assert.equal(done.patternCount, 2);
  assert.equal(typeof done.latency, 'number');
  assert.ok(done.latency > 0);
  const r = await received;
  assert.deepEqual(Object.keys(r).sort(), ['pattern', 'sourceId']);
  assert.equal(r.sourceId, 'a');

  const gone = next(b, 'peer:disconnected', (e) => e.peerId === 'a');
  await a.disconnectFromPeer('b');
  assert.equal((await gone).peerId, 'a');
  assert.equal(a.getState().peers.has('b'), false);
  await assert.rejects(a.disconnectFromPeer('b'), { code: 'AGS_ERR_NOT_FOUND', field: 'peerId' });
});

test('sync:failed names the pattern the peer refused, with an Error', async (t) => {
  const dir = await scratch(['a', 'b'], t);
  // b takes patterns of at most 256 bytes: a's bigger one is refused by b.
  const { a, b } = await servers(t, dir, ['a', 'b'], { b: { limits: { maxPatternBytes: 256 } } });
  await link(a, b, 'b');
  const failed = next(a, 'sync:failed');
  await a.syncPattern(pattern('big', { data: { blob: 'x'.repeat(1000) } }));
  const f = await failed;
  assert.equal(f.peerId, 'b');
  assert.equal(f.patternId, 'big');
  assert.ok(f.error instanceof Error);
  assert.match(f.error.message, /\S/);
  assert.equal(b.get('big'), undefined);
  assert.ok(a.getState().stats.failedSyncs >= 1);
});

test('a listener added later gets the events from then on, and none once removed', async (t) => {
  const dir = await scratch(['a', 'b'], t);
  const { a, b } = await servers(t, dir, ['a', 'b']);
  await link(a, b, 'b');
  await a.syncPattern(pattern('unheard'));
  await until(() => b.get('unheard'), 'the pattern at b');
  const heard = [];
  const on = (e) => heard.push(e.pattern.id);
  b.on('pattern:received', on);
  await a.syncPattern(pattern('heard'));
  await until(() => heard.length === 1, 'the second pattern:received');
  assert.deepEqual(heard, ['heard']);
  b.off('pattern:received', on);
  await a.syncPattern(pattern('unheard-2'));
  await until(() => b.get('unheard-2'), 'the third pattern at b');
  assert.deepEqual(heard, ['heard']);
});

test('pattern:conflict: the same version written on both sides, one winner everywhere', async (t) => {
  const dir = await scratch(['a', 'b'], t);
  const { a, b } = await servers(t, dir, ['a', 'b']);
  await a.syncPattern(pattern('c', { data: { side: 'a' } }));
  await b.syncPattern(pattern('c', { data: { side: 'b' } }));
  const conflicts = [];
  a.on('pattern:conflict', (e) => conflicts.push(['a', e]));
  b.on('pattern:conflict', (e) => conflicts.push(['b', e]));
  await link(a, b, 'b');
  await until(() => conflicts.length > 0 && a.getState().store.digest === b.getState().store.digest,
    'a conflict reported and both stores equal');
  const [, e] = conflicts[0];
  assert.deepEqual(Object.keys(e).sort(), ['pattern', 'resolution', 'sourceId']);
  assert.equal(e.pattern.id, 'c');
  assert.match(e.sourceId, /^[ab]$/);
  assert.match(e.resolution, /won/);
  assert.deepEqual(a.get('c').data, b.get('c').data);
});

test('peer:health:recovered once a degraded peer answers again', async (t) => {
  const dir = await scratch(['a', 'b'], t);
  const other = await scratch(['b'], t); // a CA a does not trust
  const { a } = await servers(t, dir, ['a'], {
    a: { retry: { maxAttempts: 1000, baseDelay: 20, maxDelay: 40, backoffMultiplier: 1 } },
  });
  const bad = new agentsync.QUICServer(config(other, 'b', { dataDir: path.join(dir, 'bad-b') }));
  await bad.start();
  const port = bad.port;
  const degraded = next(a, 'peer:health:degraded', (e) => e.peerId === 'b');
  await a.connectToPeer('127.0.0.1', port, 'b');
  await degraded;
  await bad.stop();
  // The real b comes up on the same port: a's next attempt succeeds.
  const recovered = next(a, 'peer:health:recovered', (e) => e.peerId === 'b');
  const good = new agentsync.QUICServer(config(dir, 'b', { port }));
  await good.start();
  t.after(() => good.stop());
  const r = await recovered;
  assert.equal(r.state.degraded, false);
  assert.equal(r.state.consecutiveErrors, 0);
  assert.equal(a.getState().peers.get('b').degraded, false);
});

test('events JavaScript cannot take in time are counted and reported, never a silent gap', async (t) => {
  const dir = await scratch(['a', 'b'], t);
  const { a, b } = await servers(t, dir, ['a', 'b']);
  let received = 0;
  let dropped = 0;
  let overflows = 0;
  b.on('pattern:received', () => { received++; });
  b.on('events:overflow', (e) => { overflows++; dropped += e.dropped; });
  const N = 70000; // more than the 65,536 events that may wait for JavaScript
  for (let i = 0; i < N; i += 10000) {
    await a.syncPatterns(Array.from({ length: 10000 }, (_, k) => pattern(`o-${i + k}`)));
  }
  // a sends them once connected; this thread is kept busy until b holds them all, so
  // every one of b's events waits in the queue meanwhile.
  const connecting = a.connectToPeer('127.0.0.1', b.port, 'b');
  const end = Date.now() + 120000;
  while (b.getState().store.patterns < N && Date.now() < end);
  assert.equal(b.getState().store.patterns, N);
  await connecting;
  await until(() => received + dropped === N, `${N} events or drops (${received} + ${dropped})`);
  assert.ok(overflows >= 1);
  assert.ok(dropped > 0);
  assert.ok(received >= 65536, `${received} received`);
});
