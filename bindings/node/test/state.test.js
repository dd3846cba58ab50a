// SPDX-License-Identifier: Apache-2.0
'use strict';
// getState() in seed 000's shape (peers a Map), true in every state; getCachedPatterns().
const test = require('node:test');
const assert = require('node:assert/strict');
const { agentsync, scratch, servers, config, until, link, pattern } = require('./helpers');

function checkShape(s) {
  assert.deepEqual(Object.keys(s).sort(), ['connections', 'peers', 'running', 'stats', 'store']);
  assert.deepEqual(Object.keys(s.stats).sort(), ['averageLatency', 'bytesTransferred', 'compressionRatio',
    'failedSyncs', 'successfulSyncs', 'totalSyncs']);
  for (const v of Object.values(s.stats)) assert.equal(typeof v, 'number');
  assert.ok(s.peers instanceof Map);
  for (const [id, p] of s.peers) {
    assert.equal(typeof id, 'string');
    for (const k of ['connected', 'syncCount', 'errorCount', 'latency', 'lag']) assert.ok(k in p, k);
  }
  assert.deepEqual(Object.keys(s.store).sort(), ['digest', 'id', 'patterns', 'seq']);
}

test('getState before start, running and after stop', async (t) => {
  const dir = await scratch(['a', 'b'], t);
  const { b } = await servers(t, dir, ['b']);
  const a = new agentsync.QUICServer(config(dir, 'a', {
    peers: [{ id: 'b', address: '127.0.0.1', port: b.port, priority: 1 }],
  }));
  const before = a.getState();
  checkShape(before);
  assert.equal(before.running, false);
  assert.equal(before.connections, 0);
  assert.equal(before.stats.totalSyncs, 0);
  assert.deepEqual([...before.peers.keys()], ['b']);
  assert.equal(before.peers.get('b').connected, false);
  assert.equal(a.port, 0);

  await a.start();
  t.after(() => a.stop());
  assert.ok(a.port > 0);
  // The configured peer is dialled at start.
  await until(() => a.getState().peers.get('b').connected, 'a to connect to its configured peer');
  await a.syncPatterns([pattern('s1'), pattern('s2'), pattern('s3')]);
  await until(() => a.getState().peers.get('b').lag === 0, 'b to acknowledge everything');
  const s = a.getState();
  checkShape(s);
  assert.equal(s.running, true);
  assert.equal(s.connections, 1);
  assert.ok(s.stats.totalSyncs >= 1);
  assert.equal(s.stats.successfulSyncs + s.stats.failedSyncs, s.stats.totalSyncs);
  assert.equal(s.stats.failedSyncs, 0);
  assert.ok(s.stats.averageLatency > 0);
  assert.ok(s.stats.bytesTransferred > 0);
  assert.ok(s.stats.compressionRatio > 0);
  const p = s.peers.get('b');
  assert.equal(p.connected, true);
  assert.ok(p.syncCount >= 1);
  assert.equal(p.errorCount, 0);
  assert.equal(p.lag, 0);
  assert.ok(p.latency >= 0);
  assert.equal(s.store.patterns, 3);
  assert.equal(s.store.seq, 3);
  assert.match(s.store.digest, /^[0-9a-f]{64}$/);
  assert.equal(s.store.digest, b.getState().store.digest);
  // The seed's monitoring code, as written.
  s.peers.forEach((peerState, peerId) => {
    assert.equal(peerId, 'b');
    assert.equal(typeof peerState.syncCount, 'number');
  });

  await a.stop();
  const after = a.getState();
  checkShape(after);
  assert.equal(after.running, false);
  assert.equal(after.connections, 0);
  assert.equal(after.peers.get('b').connected, false);
});

test('getCachedPatterns returns seed-shaped patterns, kept across a restart', async (t) => {
  const dir = await scratch(['a'], t);
  const a = new agentsync.QUICServer(config(dir, 'a'));
  await a.start();
  t.after(() => a.stop());
  const given = [pattern('c1', { data: { deep: { list: [1, 2, { x: null }] } } }), pattern('c2')];
  await a.syncPatterns(given);
  const cached = a.getCachedPatterns();
  assert.equal(cached.length, 2);
  for (const [i, p] of cached.entries()) {
    const { checksum, ...meta } = p.metadata;
    assert.match(checksum, /^[0-9a-f]{64}$/);
    assert.deepEqual({ ...p, metadata: meta }, given[i]);
  }
  await a.stop();
  // A new server on the same dataDir has them (the store is durable).
  const again = new agentsync.QUICServer(config(dir, 'a'));
  await again.start();
  t.after(() => again.stop());
  assert.deepEqual(again.getCachedPatterns(), cached);
});

test('without tls.cert a server makes its own CA and certificate in dataDir/certs, as agentsyncd does', async (t) => {
  const fs = require('node:fs');
  const path = require('node:path');
  const dir = await scratch([], t);
  const dataDir = path.join(dir, 'solo');
  const s = new agentsync.QUICServer({ nodeId: 'solo', host: '127.0.0.1', port: 0, dataDir });
  assert.equal(fs.existsSync(path.join(dataDir, 'certs')), false); // nothing before start()
  await s.start();
  t.after(() => s.stop());
  for (const f of ['ca.pem', 'solo.pem', 'solo-key.pem']) {
    assert.ok(fs.existsSync(path.join(dataDir, 'certs', f)), f);
  }
  await s.syncPattern(pattern('own'));
  assert.equal(s.get('own').id, 'own');
  // Without nodeId either, the id comes from the host name.
  const h = new agentsync.QUICServer({ port: 0, dataDir: path.join(dir, 'h') });
  assert.match(h.nodeId, /^[a-z0-9._-]+$/);
});
