// SPDX-License-Identifier: Apache-2.0
'use strict';
// Bad input is refused with the field named, and nothing is stored.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { agentsync, scratch, servers, config, pattern } = require('./helpers');

const { QUICServer } = agentsync;

test('a bad pattern rejects with the field named and the AGS_ERR_* code; nothing is stored', async (t) => {
  const dir = await scratch(['a'], t);
  const { a } = await servers(t, dir, ['a']);
  const cases = [
    [pattern('p', { metadata: { source: 's', tags: [], priority: 11 } }), 'metadata.priority', /1 to 10/],
    [pattern('p', { version: 0 }), 'version', /./],
    [pattern('p', { metadata: { source: 's', tags: [3] } }), 'metadata.tags[0]', /string/],
    [{ ...pattern('p'), id: undefined }, 'id', /./],
  ];
  for (const [p, field, msg] of cases) {
    const err = await a.syncPattern(p).then(() => null, (e) => e);
    assert.ok(err instanceof Error, `${field}: rejected`);
    assert.equal(err.code, 'AGS_ERR_PATTERN', `${field}: ${err.message}`);
    assert.equal(err.field, field);
    assert.ok(err.message.startsWith(`${field}: `), err.message);
    assert.match(err.message, msg);
  }
  await assert.rejects(a.syncPattern('not an object'), { code: 'AGS_ERR_PATTERN' });
  await assert.rejects(a.syncPattern({ ...pattern('p'), metadata: { ...pattern('p').metadata, checksum: 'ab'.repeat(32) } }),
    { code: 'AGS_ERR_CHECKSUM' });
  assert.equal(a.getState().store.patterns, 0);
  assert.equal(a.getState().store.seq, 0);
});

test('syncPatterns with one bad pattern rejects naming its index, and stores none of them', async (t) => {
  const dir = await scratch(['a'], t);
  const { a } = await servers(t, dir, ['a']);
  const batch = [pattern('b0'), pattern('b1'), pattern('b2', { timestamp: -5 }), pattern('b3')];
  await assert.rejects(a.syncPatterns(batch), (e) => {
    assert.equal(e.code, 'AGS_ERR_PATTERN');
    assert.equal(e.field, '[2].timestamp');
    assert.match(e.message, /^\[2\]\.timestamp: /);
    return true;
  });
  assert.equal(a.getState().store.patterns, 0);
  await assert.rejects(a.syncPatterns('nope'), TypeError);
  assert.deepEqual(await a.syncPatterns([]), []);

  // A big batch crosses in parts: the index still counts over the whole call.
  const big = Array.from({ length: 1234 }, (_, i) => pattern(`big-${i}`));
  big[1111] = pattern('big-1111', { version: 'one' });
  await assert.rejects(a.syncPatterns(big), { code: 'AGS_ERR_PATTERN', field: '[1111].version' });
  // One that cannot be serialised fails in JavaScript: the parts given before it are dropped.
  big[1111] = pattern('big-1111', { data: { n: 1n } });
  await assert.rejects(a.syncPatterns(big), TypeError);
  assert.equal(a.getState().store.patterns, 0);
  big[1111] = pattern('big-1111');
  const ok = await a.syncPatterns(big.slice(0, 600));
  assert.equal(ok.length, 600);
  assert.deepEqual(a.getCachedPatterns().map((p) => p.id), big.slice(0, 600).map((p) => p.id));
});

test('a bad config throws naming the JSON path, as agentsyncd does', async (t) => {
  const dir = await scratch(['a'], t);
  const base = config(dir, 'a');
  const cases = [
    [{ port: 70000 }, 'quic.port', /0 to 65535, got 70000/],
    [{ peers: [{ id: 'b', address: '127.0.0.1', port: 0 }] }, 'quic.peers[0].port', /1 to 65535/],
    [{ peers: [{ id: 'a', address: '127.0.0.1', port: 1 }] }, 'quic.peers[0].id', /own id/],
    [{ retry: { baseDelay: 'soon' } }, 'quic.retry.baseDelay', /integer/],
    [{ retry: { baseDelay: 100, maxDelay: 10 } }, 'quic.retry.maxDelay', /at least/],
    [{ nodeId: 'no spaces' }, 'quic.nodeId', /must be an id/],
    [{ batchSize: 0 }, 'quic.batchSize', /./],
    [{ compression: 'yes' }, 'quic.compression', /./],
    [{ tls: { ...base.tls, cert: path.join(dir, 'missing.pem') } }, 'quic.tls.cert', /cannot read/],
    [{ limits: { maxPatternBytes: 10 } }, 'quic.limits.maxPatternBytes', /./],
  ];
  for (const [extra, field, msg] of cases) {
    let err = null;
    try {
      new QUICServer({ ...base, ...extra });
    } catch (e) {
      err = e;
    }
    assert.ok(err, `${field}: thrown`);
    assert.equal(err.code, 'AGS_ERR_CONFIG', `${field}: ${err.message}`);
    assert.equal(err.field, field);
    assert.ok(err.message.startsWith(`${field}: `), err.message);
    assert.match(err.message, msg);
  }
  assert.throws(() => new QUICServer(), TypeError);
  assert.throws(() => new QUICServer([]), TypeError);
});

test('unknown keys are reported as warnings; enabled: false refuses to start', async (t) => {
  const dir = await scratch(['a'], t);
  const warnings = [];
  const onWarning = (w) => warnings.push(w);
  process.on('warning', onWarning);
  t.after(() => process.off('warning', onWarning));
  const s = new QUICServer({ ...config(dir, 'a'), enabled: false, syncIntervall: 5 });
  await new Promise((r) => setImmediate(r));
  assert.ok(warnings.some((w) => w.code === 'AGENTSYNC_CONFIG' && /quic\.syncIntervall: unknown key/.test(w.message)),
    warnings.map((w) => w.message).join('; '));
  await assert.rejects(s.start(), { code: 'AGS_ERR_CONFIG', field: 'quic.enabled' });
});

test('nodeId defaults to the id the certificate names; a bad certificate is named', async (t) => {
  const dir = await scratch(['agent-7'], t);
  const { nodeId, ...seedShaped } = config(dir, 'agent-7');
  assert.equal(nodeId, 'agent-7');
  const s = new QUICServer(seedShaped);
  assert.equal(s.nodeId, 'agent-7');
  const keyAsCert = { ...seedShaped, tls: { ...seedShaped.tls, cert: seedShaped.tls.key } };
  assert.throws(() => new QUICServer(keyAsCert), { code: 'AGS_ERR_CONFIG', field: 'quic.tls.cert' });
});

test('calls that need a started server say so', async (t) => {
  const dir = await scratch(['a'], t);
  const s = new QUICServer(config(dir, 'a'));
  await assert.rejects(s.syncPattern(pattern('x')), { code: 'AGS_ERR_STATE', message: /not started/ });
  await assert.rejects(s.connectToPeer('127.0.0.1', 4433, 'b'), { code: 'AGS_ERR_STATE' });
  assert.throws(() => s.getCachedPatterns(), { code: 'AGS_ERR_STATE', message: /not started/ });
  await assert.rejects(s.connectToPeer('127.0.0.1', 0, 'b'), TypeError);
  await assert.rejects(s.connectToPeer('127.0.0.1', 4433, 'bad id'), { code: 'AGS_ERR_INVALID', field: 'peerId' });
  await assert.rejects(s.syncPattern(pattern('x'), ['ok', 'not ok']), { field: 'peerIds[1]' });
  await s.stop(); // stopping a server never started is a no-op
});
