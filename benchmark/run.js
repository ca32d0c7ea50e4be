#!/usr/bin/env node
// `npm run bench [-- SUITE ...] [-- --baseline FILE]`: runs the named
// benchmark suites (all by default). Each suite measures gama-native and its
// peers in the same run and prints one line per figure with the ratio. The
// run is written to benchmark/results/: latest.json, report.md and
// chart.svg. With --baseline, figures more than 10% worse than in FILE (an
// earlier latest.json) are flagged, and the exit code is 1.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { parseLine, regressions } = require('./report/figures.js');
const { chart } = require('./report/chart.js');

const suites = {
  cache: () => require('./cache/index.js').run(),
  features: () => require('./features/index.js').run(),
  memory: () => require('./memory/index.js').run(),
  batch: () => require('./batch/index.js').run(),
  scaling: () => require('./scaling/index.js').run(),
  streaming: () => require('./streaming/index.js').run(),
  redis: () => require('./redis/index.js').run(),
  gpu: () => require('./gpu/index.js').run(),
};

function parseArgs(argv) {
  const names = [];
  let baseline = null;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--baseline') {
      baseline = argv[++i];
      if (!baseline) throw new Error('--baseline needs a file (an earlier benchmark/results/latest.json)');
    } else if (!argv[i].startsWith('-')) names.push(argv[i]);
  }
  return { names: names.length ? names : Object.keys(suites), baseline };
}

function markdown(results, flagged) {
  const rows = results.figures.map((f) => `| ${f.suite} | ${f.label} | ${f.text.replace(/\|/g, '\\|')} |`);
  const lines = [
    '# gama-native benchmark report',
    '',
    `${results.machine.summary}, ${results.date}.`,
    '',
    '![benchmark chart](chart.svg)',
    '',
    '| suite | figure | result (gama-native, peers in the same run, ratio, goal) |',
    '|---|---|---|',
    ...rows,
  ];
  if (flagged) {
    lines.push('', flagged.length ? `## Regressions over 10% against ${results.baseline}` : `No regression over 10% against ${results.baseline}.`);
    for (const r of flagged) lines.push(`- ${r.suite} / ${r.label}: ${r.value} vs ${r.baseline} (${(r.change * 100).toFixed(1)}%)`);
  }
  return lines.join('\n') + '\n';
}

async function main() {
  const { names, baseline } = parseArgs(process.argv.slice(2));
  for (const name of names) {
    if (!suites[name]) {
      console.error(`unknown benchmark suite "${name}"; available: ${Object.keys(suites).join(', ')}`);
      process.exit(2);
    }
  }
  let base = null;
  if (baseline) {
    try {
      base = JSON.parse(fs.readFileSync(baseline, 'utf8'));
    } catch (err) {
      console.error(`cannot read the baseline ${baseline}: ${err.message}`);
      process.exit(2);
    }
  }
  const cpus = os.cpus();
  const machine = {
    cpus: cpus.length,
    model: cpus[0]?.model ?? 'cpu',
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${os.platform()} ${os.arch()}`,
  };
  machine.summary = `${machine.cpus} x ${machine.model}, ${machine.memoryGiB} GiB, ${machine.platform}, Node ${machine.node}`;
  console.log(`# gama-native benchmarks: ${machine.summary}`);

  const lines = [];
  const print = console.log;
  console.log = (...args) => {
    const text = args.join(' ');
    lines.push(text);
    print(text);
  };
  const returned = {};
  try {
    for (const name of names) returned[name] = await suites[name]();
  } finally {
    console.log = print;
  }
  const results = {
    date: new Date().toISOString(),
    machine,
    suites: returned,
    figures: lines.map(parseLine).filter(Boolean),
    baseline,
  };
  const dir = path.join(__dirname, 'results');
  fs.mkdirSync(dir, { recursive: true });
  const flagged = base ? regressions(results.figures, base.figures ?? []) : null;
  fs.writeFileSync(path.join(dir, 'latest.json'), JSON.stringify(results, null, 2) + '\n');
  fs.writeFileSync(path.join(dir, 'report.md'), markdown(results, flagged));
  fs.writeFileSync(path.join(dir, 'chart.svg'), chart(results));
  console.log(`\nwrote benchmark/results/latest.json, report.md and chart.svg`);
  if (flagged) {
    if (flagged.length === 0) console.log(`no figure regressed by more than 10% against ${baseline}`);
    for (const r of flagged) console.log(`REGRESSION ${r.suite} / ${r.label}: ${r.value} vs ${r.baseline} (${(r.change * 100).toFixed(1)}%)`);
    if (flagged.length) process.exitCode = 1;
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
