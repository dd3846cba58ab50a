#!/usr/bin/env node
// SPDX-License-Identifier: Apache-2.0
'use strict';
/*
 * `npm pack` / `npm publish` of the agentsync package, from a checkout:
 *
 *   prepare  copies the repository's files that the addon's build needs
 *            (native.json "pack": the root CMakeLists.txt, the library, the
 *            addon's sources) into csrc/, as git tracks them, so the tarball
 *            builds the same way on another machine (scripts/build.js);
 *   clean    removes csrc/ again (it is never committed).
 */
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const pkg = path.resolve(__dirname, '..');
const root = path.resolve(pkg, '..', '..');
const csrc = path.join(pkg, 'csrc');

function prepare() {
  const { pack } = JSON.parse(fs.readFileSync(path.join(pkg, 'native.json'), 'utf8'));
  let files;
  try {
    files = execFileSync('git', ['-C', root, 'ls-files', '-z', '--', ...pack], { encoding: 'utf8' })
      .split('\0')
      .filter(Boolean);
  } catch (e) {
    console.error(`agentsync: npm pack needs a git checkout of agentsync around ${pkg}: ${e.message}`);
    process.exit(1);
  }
  if (!files.includes('CMakeLists.txt')) {
    console.error(`agentsync: ${root} does not look like the agentsync repository`);
    process.exit(1);
  }
  fs.rmSync(csrc, { recursive: true, force: true });
  for (const f of files) {
    const to = path.join(csrc, f);
    fs.mkdirSync(path.dirname(to), { recursive: true });
    fs.copyFileSync(path.join(root, f), to);
  }
  console.log(`agentsync: csrc/ holds ${files.length} files for the native build`);
}

function clean() {
  fs.rmSync(csrc, { recursive: true, force: true });
}

const cmd = process.argv[2];
if (cmd === 'prepare') prepare();
else if (cmd === 'clean') clean();
else {
  console.error('usage: pack.js prepare|clean');
  process.exit(2);
}
