// SPDX-License-Identifier: Apache-2.0
'use strict';
/*
 * What the tests share: a scratch directory with certificates, server
 * configs in seed 000's shape, bounded waits for events, and patterns.
 * Every server binds 127.0.0.1 with port 0; every wait has a bound.
 */
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { once } = require('node:events');

const agentsync = require('..');

/* How long a test waits for something that should happen in milliseconds. */
const WAIT_MS = 20000;

async function scratch(ids, t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ags-node-'));
  await agentsync.initCerts(path.join(dir, 'certs'), ids);
  if (t) t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/* Seed 000's quic object for node `id`, plus agentsync's nodeId and dataDir. */
function config(dir, id, extra = {}) {
  return {
    enabled: true,
    port: 0,
    host: '127.0.0.1',
    peers: [],
    syncInterval: 200,
    batchSize: 100,
    compression: true,
    tls: {
      cert: path.join(dir, 'certs', `${id}.pem`),
      key: path.join(dir, 'certs', `${id}-key.pem`),
      ca: path.join(dir, 'certs', 'ca.pem'),
      rejectUnauthorized: true,
    },
    retry: { maxAttempts: 3, baseDelay: 50, maxDelay: 500, backoffMultiplier: 2 },
    nodeId: id,
    dataDir: path.join(dir, id),
    ...extra,
  };
}

/* Starts servers for `ids` (a test's after() stops them). */
async function servers(t, dir, ids, extra = {}) {
  const out = {};
  for (const id of ids) {
    const s = new agentsync.QUICServer(config(dir, id, extra[id] || {}));
    await s.start();
    out[id] = s;
    t.after(() => s.stop());
  }
  return out;
}

/* The next `name` event of `emitter` that satisfies `pred`, or a rejection after WAIT_MS. */
function next(emitter, name, pred = () => true, ms = WAIT_MS) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(name, on);
      reject(new Error(`no ${name} event within ${ms} ms`));
    }, ms);
    function on(payload) {
      if (!pred(payload)) return;
      clearTimeout(timer);
      emitter.off(name, on);
      resolve(payload);
    }
    emitter.on(name, on);
  });
}

/* Waits (bounded, polling every 20 ms) until fn() is true. */
async function until(fn, what, ms = WAIT_MS) {
  const end = Date.now() + ms;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/* Connects a to b and waits until a has b as a connected peer. */
async function link(a, b, bId) {
  const connected = next(a, 'peer:connected', (p) => p.peerId === bId);
  await a.connectToPeer('127.0.0.1', b.port, bId);
  return connected;
}

/* A seed-shaped pattern. */
function pattern(id, extra = {}) {
  return {
    id,
    agentId: 'test-generator',
    type: 'test_execution',
    data: { testCase: 'UserLogin', result: 'passed', n: id },
    metadata: { source: 'test-generator', tags: ['unit', 'auth'], priority: 1 },
    timestamp: 1761100000000,
    version: 1,
    ...extra,
  };
}

module.exports = { agentsync, scratch, config, servers, next, until, link, pattern, once, WAIT_MS };
