// SPDX-License-Identifier: Apache-2.0
'use strict';
// FederationHub (seed 004) against a real `agentsyncd --hub`, with real HS256 JWTs.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFile } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { promisify } = require('node:util');
const { agentsync, scratch, until, pattern, WAIT_MS } = require('./helpers');

const { FederationHub } = agentsync;
const SECRET = 'node hub test: a shared secret longer than 32 bytes';
const ISS = 'agentsync-node-test';
const AUD = 'hub';

function b64url(x) {
  return Buffer.from(x).toString('base64url');
}

/* An HS256 JWT as `agentsync token` makes: sub, tenant, iss, aud, iat, exp. */
function jwt(sub, tenant, { secret = SECRET, ttl = 3600 } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify({ sub, tenant, iss: ISS, aud: AUD, iat: now, exp: now + ttl }));
  const sig = crypto.createHmac('sha256', secret).update(`${head}.${body}`).digest('base64url');
  return `${head}.${body}.${sig}`;
}

function program(name) {
  const dir = process.env.AGS_BIN_DIR || path.resolve(__dirname, '..', '..', '..', 'build', 'bin');
  return path.join(dir, name);
}

/* Starts agentsyncd --hub; resolves its QUIC endpoint once it says it listens. */
async function startHub(t, dir) {
  fs.writeFileSync(path.join(dir, 'secret'), `${SECRET}\n`);
  const c = path.join(dir, 'certs');
  const cfg = {
    quic: {
      nodeId: 'hub', host: '127.0.0.1', port: 0, dataDir: path.join(dir, 'hub-data'),
      api: { listen: '127.0.0.1:0' },
      tls: { cert: path.join(c, 'hub.pem'), key: path.join(c, 'hub-key.pem'), ca: path.join(c, 'ca.pem') },
      hub: { algorithms: ['HS256'], hs256SecretFile: path.join(dir, 'secret'), issuer: ISS, audience: AUD },
    },
  };
  const file = path.join(dir, 'hub.json');
  fs.writeFileSync(file, JSON.stringify(cfg));
  const p = spawn(program('agentsyncd'), ['--config', file, '--hub'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stdout.on('data', (d) => { out += d; });
  p.stderr.on('data', (d) => { err += d; });
  t.after(() => new Promise((resolve) => {
    if (p.exitCode !== null) return resolve();
    p.once('exit', resolve);
    p.kill('SIGTERM');
  }));
  await until(() => /listening .*quic=\S+:\d+/.test(out) || p.exitCode !== null, 'agentsyncd to listen');
  if (p.exitCode !== null) throw new Error(`agentsyncd exited ${p.exitCode}: ${err}`);
  const port = Number(/quic=\S+:(\d+)/.exec(out)[1]);
  return `quic://127.0.0.1:${port}`;
}

function agentConfig(dir, endpoint, name, extra = {}) {
  const c = path.join(dir, 'certs');
  return {
    endpoint, agentId: name, tenantId: 'acme', token: jwt(name, 'acme'), enableMTLS: true,
    cert: path.join(c, 'agent.pem'), key: path.join(c, 'agent-key.pem'), ca: path.join(c, 'ca.pem'),
    dataDir: path.join(dir, name), timeoutMs: WAIT_MS, ...extra,
  };
}

test('FederationHub: push, pull, stats, local reads; a repeat run resumes with 0-RTT', async (t) => {
  const dir = await scratch(['hub', 'agent'], t);
  const endpoint = await startHub(t, dir);

  const one = new FederationHub(agentConfig(dir, endpoint, 'agent-1'));
  t.after(() => one.disconnect());
  assert.equal(one.agentId, 'agent-1');
  assert.equal(one.isConnected(), false);
  await assert.rejects(one.sync(), { code: 'AGS_ERR_STATE' });
  await one.put(pattern('h1'));
  await one.put(pattern('h2', { type: 'coverage_gap' }));
  await one.connect();
  assert.equal(one.isConnected(), true);
  const r1 = await one.sync();
  assert.deepEqual(Object.keys(r1).sort(), ['conflicts', 'durationMs', 'pulled', 'pushed']);
  assert.equal(r1.pushed, 2);
  assert.equal(r1.pulled, 0);
  assert.equal(r1.conflicts, 0);
  const s1 = one.getSyncStats();
  assert.ok(s1.lastSyncTime > 0);
  assert.ok(s1.vectorClock['agent-1'] >= 1, JSON.stringify(s1.vectorClock));
  await one.disconnect();
  assert.equal(one.isConnected(), false);

  // Another agent of the tenant, with its token in a file, pulls both.
  fs.writeFileSync(path.join(dir, 'two.jwt'), `${jwt('agent-2', 'acme')}\n`);
  const { token, ...noToken } = agentConfig(dir, endpoint, 'agent-2');
  const two = new FederationHub({ ...noToken, tokenFile: path.join(dir, 'two.jwt') });
  t.after(() => two.disconnect());
  const received = [];
  two.on('pattern:received', ({ pattern: p, sourceId }) => received.push([p.id, sourceId]));
  await two.connect();
  const r2 = await two.sync();
  assert.equal(r2.pulled, 2);
  assert.equal(r2.pushed, 0);
  assert.deepEqual(two.getCachedPatterns().map((p) => p.id).sort(), ['h1', 'h2']);
  assert.deepEqual(two.query({ type: 'coverage_gap' }).map((p) => p.id), ['h2']);
  assert.equal(two.get('h1').data.n, 'h1');
  assert.equal(two.getStoreState().patterns, 2);
  assert.match(two.getStoreState().digest, /^[0-9a-f]{64}$/);
  await until(() => received.length === 2, 'two pattern:received events');
  assert.deepEqual(received.map((r) => r[0]).sort(), ['h1', 'h2']);
  // While connected, agent-2 gets agent-1's next change live.
  const live = new Promise((resolve) => two.on('pattern:received', (e) => e.pattern.id === 'h3' && resolve(e)));
  await one.connect();
  await one.put(pattern('h3'));
  await one.sync();
  await live;
  await one.disconnect();
  await two.disconnect();

  // Ephemeral agents: each run a new process; the second run of one resumes its TLS session.
  const run = promisify(execFile);
  const cfg3 = JSON.stringify(agentConfig(dir, endpoint, 'agent-3'));
  const args = [path.join(__dirname, 'fixtures', 'agent.js'), cfg3];
  const first = JSON.parse((await run(process.execPath, args, { timeout: WAIT_MS })).stdout);
  assert.equal(first.result.pulled, 3);
  assert.equal(first.stats.resumed, false);
  const second = JSON.parse((await run(process.execPath, args, { timeout: WAIT_MS })).stdout);
  assert.equal(second.result.pulled, 0);
  assert.equal(second.patterns, 3);
  assert.equal(second.stats.resumed, true);
  assert.equal(second.stats.earlyData, true);
});

test('FederationHub refuses a bad token, a foreign secret, and bad options by name', async (t) => {
  const dir = await scratch(['hub', 'agent'], t);
  const endpoint = await startHub(t, dir);
  const forged = new FederationHub(agentConfig(dir, endpoint, 'mallory', {
    token: jwt('mallory', 'acme', { secret: 'some other secret that is long enough, yes' }),
  }));
  await assert.rejects(forged.connect(), { code: 'AGS_ERR_AUTH' });
  assert.equal(forged.isConnected(), false);
  const expired = new FederationHub(agentConfig(dir, endpoint, 'late', { token: jwt('late', 'acme', { ttl: -3600 }) }));
  await assert.rejects(expired.connect(), (e) => e.code === 'AGS_ERR_AUTH' && /exp/i.test(e.message));

  const base = agentConfig(dir, endpoint, 'agent-9');
  const bad = [
    [{ endpoint: 'http://127.0.0.1:1' }, 'endpoint'],
    [{ agentId: 'someone-else' }, 'agentId'],
    [{ tenantId: 'other' }, 'tenantId'],
    [{ token: undefined }, 'token'],
    [{ token: undefined, tokenFile: path.join(dir, 'missing.jwt') }, 'tokenFile'],
    [{ tokenFile: path.join(dir, 'x') }, 'tokenFile'],
    [{ cert: undefined }, 'cert'],
    [{ enableMTLS: false }, 'enableMTLS'],
  ];
  for (const [extra, field] of bad) {
    assert.throws(() => new FederationHub({ ...base, ...extra }), (e) => {
      assert.equal(e.code, 'AGS_ERR_CONFIG', `${field}: ${e.message}`);
      assert.equal(e.field, field, e.message);
      assert.ok(e.message.startsWith(`${field}: `), e.message);
      return true;
    });
  }
  await assert.rejects(new FederationHub(base).put({ id: 'x' }), { code: 'AGS_ERR_PATTERN' });
  assert.throws(() => new FederationHub({ ...base, compression: 'yes' }), { code: 'AGS_ERR_CONFIG', field: 'compression' });
  const warnings = [];
  const onWarning = (w) => warnings.push(w.message);
  process.on('warning', onWarning);
  t.after(() => process.off('warning', onWarning));
  new FederationHub({ ...agentConfig(dir, endpoint, 'agent-10'), enableMtls: true });
  await new Promise((r) => setImmediate(r));
  assert.ok(warnings.some((w) => /enableMtls: unknown key/.test(w)), warnings.join('; '));
});
