// SPDX-License-Identifier: Apache-2.0
'use strict';
// A user's program against the installed package (require('agentsync')):
// run by pack-install.sh in a project outside the repository.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const assert = require('node:assert/strict');
const { QUICServer, initCerts } = require('agentsync');

async function main() {
  assert.ok(require.resolve('agentsync').startsWith(path.join(process.cwd(), 'node_modules')),
    'agentsync must come from this project\'s node_modules');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ags-npm-app-'));
  const servers = [];
  const timer = setTimeout(() => {
    console.error('FAIL: the pattern did not reach b within 60 s');
    process.exit(1);
  }, 60000);
  try {
    await initCerts(path.join(dir, 'certs'), ['a', 'b']);
    const conf = (id) => ({
      enabled: true, port: 0, host: '127.0.0.1', peers: [],
      tls: {
        cert: path.join(dir, 'certs', `${id}.pem`), key: path.join(dir, 'certs', `${id}-key.pem`),
        ca: path.join(dir, 'certs', 'ca.pem'), rejectUnauthorized: true,
      },
      nodeId: id, dataDir: path.join(dir, id),
    });
    const a = new QUICServer(conf('a'));
    const b = new QUICServer(conf('b'));
    await a.start(); servers.push(a);
    await b.start(); servers.push(b);
    const got = new Promise((resolve) => b.on('pattern:received', (e) => {
      if (e.pattern.id === 'from-the-tarball') resolve(e);
    }));
    await a.connectToPeer('127.0.0.1', b.port, 'b');
    await a.syncPattern({
      id: 'from-the-tarball', agentId: 'app', type: 'test_execution',
      data: { ok: true }, metadata: { source: 'app', tags: [] }, timestamp: Date.now(), version: 1,
    });
    const e = await got;
    assert.equal(e.sourceId, 'a');
    assert.deepEqual(b.get('from-the-tarball').data, { ok: true });
    console.log('ok: the installed package synced a pattern from a to b');
  } finally {
    clearTimeout(timer);
    for (const s of servers) await s.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
main().catch((e) => { console.error(`FAIL: ${e.stack || e}`); process.exit(1); });
