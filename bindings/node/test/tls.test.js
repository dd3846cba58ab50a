// SPDX-License-Identifier: Apache-2.0
'use strict';
// TLS 1.3 with certificates: a peer whose certificate another CA signed is refused.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { agentsync, scratch, servers, next, config } = require('./helpers');

test('a peer with a certificate from another CA is refused and reported through peer:error', async (t) => {
  const dir = await scratch(['a'], t);
  const other = await scratch(['b'], t); // another CA
  const { a } = await servers(t, dir, ['a'], {
    a: { retry: { maxAttempts: 100, baseDelay: 20, maxDelay: 40, backoffMultiplier: 1 } },
  });
  const b = new agentsync.QUICServer(config(other, 'b', { dataDir: path.join(dir, 'b') }));
  await b.start();
  t.after(() => b.stop());
  let connected = false;
  a.on('peer:connected', () => { connected = true; });
  b.on('peer:connected', () => { connected = true; });
  const errors = [];
  a.on('peer:error', (e) => errors.push(e));
  const refusedAtB = next(b, 'connection:refused');
  const degraded = next(a, 'peer:health:degraded', (e) => e.peerId === 'b');
  await a.connectToPeer('127.0.0.1', b.port, 'b');
  const d = await degraded;
  assert.ok(errors.length >= 5, `${errors.length} peer:error events`);
  const e = errors[0];
  assert.deepEqual(Object.keys(e).sort(), ['error', 'peerId']);
  assert.equal(e.peerId, 'b');
  assert.ok(e.error instanceof Error);
  assert.match(e.error.message, /certificate|TLS|handshake/i);
  assert.equal(d.state.degraded, true);
  assert.equal(d.state.connected, false);
  assert.ok(d.state.errorCount >= 5);
  const r = await refusedAtB;
  assert.match(r.address, /^127\.0\.0\.1:\d+$/);
  assert.ok(r.error instanceof Error);
  assert.equal(connected, false);
  const st = a.getState();
  assert.equal(st.connections, 0);
  assert.equal(st.peers.get('b').connected, false);
  assert.ok(st.peers.get('b').errorCount >= 5);
  assert.equal(st.peers.get('b').degraded, true);
});
