#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
'use strict';
/*
 * `npm install` of the agentsync package: builds agentsync.node with CMake
 * from the C sources, with nothing but the system's packages (on Debian,
 * those of scripts/install-deps.sh) and the headers of the Node that runs
 * this script. Nothing is downloaded.
 *
 * The sources are the tarball's csrc/ (assembled by scripts/pack.js at pack
 * time) or, in a checkout, the repository around this package. Either way the
 * repository's own CMakeLists.txt is configured with only what the addon
 * needs, and only the addon's target is built, in ./build.
 *
 * Environment: AGENTSYNC_BUILD_TYPE (default RelWithDebInfo, as the
 * repository's own build), AGENTSYNC_JOBS (default: the number of CPUs),
 * AGENTSYNC_NODE_INCLUDE_DIR (where node_api.h is, when not beside this
 * Node).
 */
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const pkg = path.resolve(__dirname, '..');

function fail(msg) {
  console.error(`agentsync: ${msg}`);
  process.exit(1);
}

function sourceRoot() {
  const packed = path.join(pkg, 'csrc');
  if (fs.existsSync(path.join(packed, 'CMakeLists.txt'))) return packed;
  const checkout = path.resolve(pkg, '..', '..');
  const top = path.join(checkout, 'CMakeLists.txt');
  if (fs.existsSync(top) && /project\(agentsync\b/.test(fs.readFileSync(top, 'utf8'))) return checkout;
  return fail(`no C sources: neither ${packed} (a packed tarball) nor a checkout around ${pkg}`);
}

function nodeIncludeDir() {
  const dirs = [
    process.env.AGENTSYNC_NODE_INCLUDE_DIR,
    path.resolve(path.dirname(process.execPath), '..', 'include', 'node'),
    '/usr/include/node',
  ].filter(Boolean);
  const found = dirs.find((d) => fs.existsSync(path.join(d, 'node_api.h')));
  if (!found) {
    fail(`node_api.h not found (looked in ${dirs.join(', ')}): install the headers of this Node ` +
      `(Debian: apt-get install libnode-dev) or set AGENTSYNC_NODE_INCLUDE_DIR`);
  }
  return found;
}

function run(cmd, args) {
  console.log(`agentsync: ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { stdio: 'inherit' });
  if (r.error) {
    fail(`cannot run ${cmd}: ${r.error.message}` +
      (r.error.code === 'ENOENT' ? ' (install cmake and a C compiler: scripts/install-deps.sh)' : ''));
  }
  if (r.status !== 0) fail(`${cmd} failed (exit ${r.status}); the output above says why`);
}

const build = path.join(pkg, 'build');
const jobs = process.env.AGENTSYNC_JOBS || String(os.cpus().length || 2);
run('cmake', [
  '-S', sourceRoot(),
  '-B', build,
  `-DCMAKE_BUILD_TYPE=${process.env.AGENTSYNC_BUILD_TYPE || 'RelWithDebInfo'}`,
  '-DAGS_TESTS=OFF',
  '-DAGS_BENCH=OFF',
  '-DAGS_NODE=ON',
  '-DAGS_PYTHON=OFF',
  '-DAGS_INSTALL_RULES=OFF',
  `-DAGS_NODE_EXECUTABLE=${process.execPath}`,
  `-DAGS_NODE_INCLUDE_DIR=${nodeIncludeDir()}`,
]);
run('cmake', ['--build', build, '--target', 'agentsync_node', '-j', jobs]);
const addon = path.join(build, 'bindings', 'node', 'agentsync.node');
if (!fs.existsSync(addon)) fail(`the build did not make ${addon}`);
console.log(`agentsync: built ${addon}`);
