// SPDX-License-Identifier: Apache-2.0
'use strict';
// Start/stop cycles, a process that exits by itself, servers collected without stop().
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { agentsync, scratch, config, link, next, until, pattern, once, WAIT_MS } = require('./helpers');

const fixture = path.join(__dirname, 'fixtures', 'exit.js');

/* Runs the fixture in `mode`; resolves {code, signal, out} when it exits, or kills it after ms. */
function child(mode, dir, { ms = WAIT_MS, args = [], extra = [] } = {}) {
  const env = { ...process.env };
  if (mode === 'exitRunning' && env.LD_PRELOAD) {
    // Under the sanitizer build: process.exit() leaves V8's own heap allocated, by design,
    // and LeakSanitizer would report it (the library's memory is freed by the 'exit' hook).
    env.ASAN_OPTIONS = `${env.ASAN_OPTIONS ? `${env.ASAN_OPTIONS}:` : ''}detect_leaks=0`;
  }
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [...args, fixture, mode, dir, ...extra], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    const timer = setTimeout(() => p.kill('SIGKILL'), ms);
    p.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, out });
    });
  });
}

const count = (dir) => fs.readdirSync(dir).length;

test('start/stop cycles leave no thread, file or socket behind', async (t) => {
  const dir = await scratch(['a', 'b'], t);
  const b = new agentsync.QUICServer(config(dir, 'b'));
  await b.start();
  t.after(() => b.stop());
  const a = new agentsync.QUICServer(config(dir, 'a'));
  t.after(() => a.stop());
  const cycle = async (i) => {
    await a.start();
    await link(a, b, 'b');
    await a.syncPattern(pattern(`cycle-${i}`));
    await until(() => a.getState().peers.get('b').lag === 0, 'b to have the pattern');
    await a.disconnectFromPeer('b');
    await a.stop();
  };
  await cycle(0); // the first one brings up what stays (thread pools)
  const fds = count('/proc/self/fd');
  const threads = count('/proc/self/task');
  const CYCLES = Number(process.env.AGS_NODE_CYCLES || 20);
  for (let i = 1; i <= CYCLES; i++) await cycle(i);
  await until(() => count('/proc/self/task') === threads, `threads back to ${threads}`);
  assert.equal(count('/proc/self/fd'), fds);
  assert.equal(b.getState().store.patterns, CYCLES + 1);
  assert.equal(a.getState().running, false);
});

test('a process whose servers were stopped exits by itself', async (t) => {
  const dir = await scratch(['a', 'b'], t);
  const r = await child('stopped', dir);
  assert.equal(r.signal, null, r.out);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /done/);
});

test('running servers keep the process up', async (t) => {
  const dir = await scratch(['a', 'b'], t);
  // Its script is done once it prints "done": a second later it must still be there.
  const p = spawn(process.execPath, [fixture, 'running', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  p.stdout.on('data', (d) => { out += d; });
  p.stderr.on('data', (d) => { out += d; });
  t.after(() => { if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL'); });
  await until(() => /done/.test(out) || p.exitCode !== null, 'the child to be done');
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(p.exitCode, null, `exited: ${out}`);
  const exited = new Promise((r) => p.once('exit', (code, signal) => r(signal)));
  p.kill('SIGKILL');
  assert.equal(await exited, 'SIGKILL');
});

test('servers collected without stop() do not crash the process', async (t) => {
  const dir = await scratch(['a', 'b'], t);
  for (const [mode, n] of [['collected', 20], ['unrefCollected', 2]]) {
    const r = await child(mode, dir, { args: ['--expose-gc'] });
    assert.equal(r.signal, null, `${mode}: ${r.out}`);
    assert.equal(r.code, 0, `${mode}: ${r.out}`);
    assert.match(r.out, new RegExp(`freed ${n} of ${n}`), `${mode}: ${r.out}`);
    assert.match(r.out, /done/, mode);
  }
});

test('process.exit() while a server runs stops it on the way out: its peer is told', async (t) => {
  const dir = await scratch(['a', 'b'], t);
  // b would take ten minutes to notice a peer that vanished without a word.
  const b = new agentsync.QUICServer(config(dir, 'b', { idleTimeout: 600000, keepAlive: 0 }));
  await b.start();
  t.after(() => b.stop());
  for (let i = 0; i < 3; i++) {
    const connected = next(b, 'peer:connected', (e) => e.peerId === 'a');
    const gone = next(b, 'peer:disconnected', (e) => e.peerId === 'a');
    const r = await child('exitRunning', dir, { args: [], extra: [String(b.port)] });
    assert.equal(r.signal, null, r.out);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /done/);
    await connected;
    await gone;
  }
});

test('a listener that throws is an uncaught exception, and the server still stops', async (t) => {
  const dir = await scratch(['a', 'b'], t);
  const r = await child('throwing', dir);
  assert.match(r.out, /uncaught: listener failed/);
  assert.match(r.out, /done/);
  assert.equal(r.code, 0, r.out);
});

test('a server in a worker thread that is terminated while running is torn down with it', async (t) => {
  const { Worker } = require('node:worker_threads');
  const dir = await scratch(['a'], t);
  const src = `
    const { parentPort, workerData } = require('node:worker_threads');
    const { QUICServer } = require(workerData.pkg);
    const s = new QUICServer(workerData.cfg);
    s.start().then(() => parentPort.postMessage(s.port));`;
  for (let i = 0; i < 3; i++) {
    const cfg = config(dir, 'a', { dataDir: path.join(dir, `w${i}`) });
    const w = new Worker(src, { eval: true, workerData: { pkg: path.resolve(__dirname, '..'), cfg } });
    const [port] = await once(w, 'message');
    await w.terminate();
    // Its socket is closed: the port can be bound again.
    const again = new agentsync.QUICServer(config(dir, 'a', { port, dataDir: path.join(dir, `m${i}`) }));
    await again.start();
    assert.equal(again.port, port);
    await again.stop();
  }
});
