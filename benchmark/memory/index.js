// The memory benchmark. So far: the sub-allocator's placement latency and
// fragmentation per strategy (a Rust benchmark, benchmark/memory/suballoc.rs,
// run through cargo in release mode).
'use strict';
const { execFileSync } = require('node:child_process');
const path = require('node:path');

async function run() {
  const out = execFileSync('cargo', ['bench', '--quiet', '--bench', 'suballoc'], {
    cwd: path.join(__dirname, '..', '..'),
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const rows = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
  for (const r of rows) {
    const goal = r.strategy === 'best-fit' ? ` (goal p99 < 2000 ns: ${r.p99Ns < 2000 ? 'met' : 'missed'})` : '';
    console.log(`memory  sub-allocator ${r.strategy}, 1M ops (log-uniform 256 B-64 MiB, half frees): mean ${r.meanNs.toFixed(0)} ns | p99 ${r.p99Ns} ns | fragmentation at end ${r.fragmentation.toFixed(3)}${goal}`);
  }
  return rows;
}

module.exports = { run };
