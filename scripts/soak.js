#!/usr/bin/env node
// Soak run (`npm run soak`, not part of npm test): at least a million batch
// items through every intake path, a million cache operations with eviction
// and a million memory allocations with some blocks dropped unreleased.
// Samples RSS and counters; fails if RSS keeps growing after warm-up or the
// counters do not come back to what they should be.
'use strict';
const path = require('node:path');
const { AudioFeatureCache, BatchProcessor, GAMAMemoryManager } = require(path.join(__dirname, '..', 'index.js'));

const MB = 1024 * 1024;
const rss = () => process.memoryUsage().rss;
const rows = [];
const failures = [];

/** Runs `rounds` rounds of `round()`, sampling RSS after each; the last
 * third of the samples may not exceed the first third's peak by `slack`. */
async function phase(name, rounds, round, slack = 48 * MB) {
  const samples = [];
  const started = Date.now();
  for (let r = 0; r < rounds; r++) {
    await round(r);
    if (global.gc) global.gc();
    samples.push(rss());
  }
  const third = Math.max(1, Math.floor(rounds / 3));
  const early = Math.max(...samples.slice(0, third));
  const late = Math.max(...samples.slice(-third));
  const plateau = late <= early + slack;
  rows.push({ phase: name, seconds: ((Date.now() - started) / 1000).toFixed(1), rssEarlyMB: (early / MB).toFixed(0), rssLateMB: (late / MB).toFixed(0), plateau });
  if (!plateau) failures.push(`${name}: RSS grew from ${(early / MB).toFixed(0)} MB to ${(late / MB).toFixed(0)} MB`);
}

function expect(what, actual, wanted) {
  if (actual !== wanted) failures.push(`${what}: ${actual}, expected ${wanted}`);
}

async function main() {
  const scale = Number(process.argv[process.argv.indexOf('--scale') + 1]) || 1;
  const items = Math.round(1_000_000 * scale);
  const clip = new Float32Array(64).fill(0.25);

  // Batch items: addItems, addItem, with and without signals, several chunks in flight.
  const bp = new BatchProcessor({ maxBatchSize: 64 });
  const perRound = 20_000;
  const batchRounds = Math.ceil(items / perRound);
  let done = 0;
  await phase('batch items (addItems, addItem, signals, 8 chunks in flight)', batchRounds, async (r) => {
    const controller = new AbortController();
    const chunks = [];
    for (let c = 0; c < 8; c++) {
      const n = perRound / 8;
      if ((r + c) % 4 === 0) chunks.push(bp.addItems('MEASURE', Array.from({ length: n }, () => clip)));
      else if ((r + c) % 4 === 1) chunks.push(bp.addItems('MEASURE', Array.from({ length: n }, () => clip), { signal: controller.signal }));
      else if ((r + c) % 4 === 2) chunks.push(Promise.all(Array.from({ length: n }, () => bp.addItem('MEASURE', clip, { signal: controller.signal }))));
      else chunks.push(Promise.all(Array.from({ length: n }, () => bp.addItem('MEASURE', clip))));
    }
    for (const results of await Promise.all(chunks)) done += results.length;
  });
  const stats = bp.getStats();
  expect('batch items completed', stats.completed, done);
  expect('batch items queued after the run', stats.queued + stats.running, 0);
  await bp.close();

  // Cache operations with eviction.
  const cache = new AudioFeatureCache({ maxEntries: 5000, maxMemory: '16MB' });
  const cacheRounds = 20;
  const opsPerRound = Math.ceil(items / cacheRounds);
  const vector = new Float32Array(128).fill(1);
  await phase('cache set/get/getOrCompute with eviction', cacheRounds, async (r) => {
    for (let i = 0; i < opsPerRound; i++) {
      const key = `k${(i * 7919 + r) % 50_000}`;
      if (i % 3 === 0) cache.set(key, vector, i % 5 === 0 ? { tags: ['t'] } : undefined);
      else if (i % 3 === 1) cache.get(key);
      else if (i % 1000 === 2) await cache.getOrCompute(key, () => ({ at: i }));
      else cache.has(key);
    }
    cache.invalidate({ tag: 't' });
  });
  const c = cache.getStats();
  if (c.entries > 5000) failures.push(`cache holds ${c.entries} entries over maxEntries`);
  if (c.bytes > 16 * 1000 * 1000) failures.push(`cache holds ${c.bytes} bytes over maxMemory`);
  cache.clear();
  expect('cache entries after clear', cache.getStats().entries, 0);

  // Memory allocations, some blocks dropped without release.
  const memory = new GAMAMemoryManager({ maxMemory: '512MB', reservedMemory: 0, device: 'cpu' });
  const allocRounds = 20;
  const perAlloc = Math.ceil(items / allocRounds);
  await phase('memory allocate/release (1 in 100 dropped for the GC)', allocRounds, async () => {
    for (let i = 0; i < perAlloc; i++) {
      const block = memory.allocate(i % 2 ? 4096 : 65536, { operation: 'soak' });
      if (i % 100 !== 0) block.release();
    }
    await new Promise((resolve) => setImmediate(resolve));
  });
  if (global.gc) {
    for (let i = 0; i < 5; i++) {
      global.gc();
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
  const usage = memory.getMemoryUsage();
  expect('host bytes in use once every block is released or collected', usage.host.used, 0);

  console.table(rows);
  console.log(`batch items: ${done}, cache operations: ${cacheRounds * opsPerRound}, allocations: ${allocRounds * perAlloc}`);
  if (failures.length) {
    for (const f of failures) console.error(`FAIL ${f}`);
    process.exit(1);
  }
  console.log('soak passed');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
