// Runs one of the Rust benchmarks (`cargo bench --bench NAME`, harness-free
// programs printing one JSON object per line) and returns those objects.
'use strict';
const { execFileSync } = require('node:child_process');
const path = require('node:path');

function cargoBench(name) {
  const out = execFileSync('cargo', ['bench', '--quiet', '--bench', name], {
    cwd: path.join(__dirname, '..'),
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
}

module.exports = { cargoBench };
