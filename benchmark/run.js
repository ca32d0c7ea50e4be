#!/usr/bin/env node
// `npm run bench [-- SUITE ...]`: runs the named benchmark suites (all by
// default). Each suite measures gama-native and its peers in the same run and
// prints one line per figure with the ratio.
'use strict';
const path = require('node:path');

const suites = {
  cache: () => require('./cache/index.js').run(),
  features: () => require('./features/index.js').run(),
  memory: () => require('./memory/index.js').run(),
  batch: () => require('./batch/index.js').run(),
};

async function main() {
  const asked = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  const names = asked.length ? asked : Object.keys(suites);
  for (const name of names) {
    if (!suites[name]) {
      console.error(`unknown benchmark suite "${name}"; available: ${Object.keys(suites).join(', ')}`);
      process.exit(2);
    }
  }
  const os = require('node:os');
  console.log(`# gama-native benchmarks: ${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, ${path.basename(process.cwd())}`);
  for (const name of names) await suites[name]();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
