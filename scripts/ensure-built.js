#!/usr/bin/env node
// Makes a fresh clone usable: installs npm dependencies when they are missing
// or older than package.json, and builds the release addon when it is missing
// or older than any Rust source. Used by `npm test`, `npm run demo` and
// `npm run bench`, so none of them needs a set-up step first.
'use strict';
const { execSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const addon = path.join(root, 'gama-native.linux-x64-gnu.node');

function mtime(file) {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

function newest(dir) {
  let latest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(full) : mtime(full));
  }
  return latest;
}

function run(command) {
  console.error(`> ${command}`);
  execSync(command, { cwd: root, stdio: 'inherit' });
}

const installed = mtime(path.join(root, 'node_modules', '.package-lock.json'));
if (installed === 0 || installed < mtime(path.join(root, 'package.json'))) {
  // `npm ci` fails against registries that lag on the napi CLI's optional
  // packages for other platforms, so this uses `npm install`.
  run('npm install --no-audit --no-fund');
}

const sources = Math.max(
  newest(path.join(root, 'crates')),
  mtime(path.join(root, 'Cargo.toml')),
  mtime(path.join(root, 'Cargo.lock')),
);
if (mtime(addon) < sources) {
  run('npm run build');
}
