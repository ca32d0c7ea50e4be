#!/usr/bin/env node
// Property/fuzz run over every export: `npm run fuzz -- --cases N [--seed S]`.
// Cases run in batches, each in a child process (scripts/fuzz-child.js), so a
// crash, a hang or an unsettled promise is caught and reported with the seed
// that reproduces it. Exits non-zero on any of them.
'use strict';
const { spawnSync } = require('node:child_process');
const path = require('node:path');

function fuzz({ cases = 4000, seed = 1, batch = 250 } = {}) {
  const child = path.join(__dirname, 'fuzz-child.js');
  const failures = [];
  let ran = 0;
  let threw = 0;
  const unclear = new Map();
  for (let b = 0; ran < cases; b++) {
    const n = Math.min(batch, cases - ran);
    const batchSeed = (seed * 7919 + b * 104729) >>> 0;
    const run = spawnSync(process.execPath, ['--expose-gc', child, String(batchSeed), String(n)], { encoding: 'utf8', timeout: 120000, maxBuffer: 1 << 24 });
    const line = run.stdout.trim().split('\n').pop() || '';
    let report = null;
    try { report = JSON.parse(line); } catch {}
    if (run.signal || run.status !== 0 || !report) {
      failures.push(`seed ${batchSeed} (${n} cases): ${run.signal ? `killed by ${run.signal}` : `exit ${run.status}`}${run.error ? ` (${run.error.code})` : ''}\n${(run.stderr || '').slice(-2000)}`);
      ran += n;
      continue;
    }
    ran += report.ran;
    threw += report.threw;
    for (const m of report.unclear) unclear.set(m, (unclear.get(m) || 0) + 1);
    if (report.unsettled.length) failures.push(`seed ${batchSeed}: cases ${report.unsettled.join(', ')} returned promises that never settled`);
  }
  for (const [message, n] of unclear) failures.push(`${n} errors without a code: ${message}`);
  return { ran, threw, failures };
}

module.exports = { fuzz };

if (require.main === module) {
  const arg = (name, fallback) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? Number(process.argv[i + 1]) : fallback;
  };
  const started = Date.now();
  const { ran, threw, failures } = fuzz({ cases: arg('--cases', 20000), seed: arg('--seed', Date.now() % 1e6) });
  console.log(`fuzz: ${ran} cases in ${((Date.now() - started) / 1000).toFixed(1)} s, ${threw} threw a clean error, ${failures.length} failures`);
  for (const f of failures) console.log(f);
  process.exit(failures.length ? 1 : 0);
}
