// The memory benchmark: pooled host blocks from JS against fresh typed
// arrays, and the sub-allocator's placement latency and fragmentation per
// strategy (a Rust benchmark, benchmark/memory/suballoc.rs, run through cargo
// in release mode). On a machine with a GPU (GAMA_BENCH_GPU=1) the same Rust
// benchmark also times pooled GPU blocks against raw cuMemAlloc/cuMemFree.
'use strict';
const { cargoBench } = require('../cargo_bench.js');

const { GAMAMemoryManager } = require('../../index.js');

/** Operations per second of `op`, best of three timed rounds of `n`. */
function rate(n, op) {
  for (let i = 0; i < Math.min(n, 200); i++) op(i);
  let best = 0;
  for (let round = 0; round < 3; round++) {
    const started = process.hrtime.bigint();
    for (let i = 0; i < n; i++) op(i);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    best = Math.max(best, n / seconds);
  }
  return best;
}

function fmt(x) {
  return x >= 1e6 ? `${(x / 1e6).toFixed(2)}M` : x >= 1e3 ? `${(x / 1e3).toFixed(1)}k` : x.toFixed(0);
}

async function hostBlocks() {
  const mm = new GAMAMemoryManager({ maxMemory: '1GiB', device: 'cpu' });
  const rows = [];
  for (const [label, bytes, n] of [['64 KB', 64 * 1024, 100_000], ['4 MB', 4 * 1024 * 1024, 5_000]]) {
    const floats = bytes / 4;
    const pooled = rate(n, (i) => {
      const block = mm.allocate(bytes, { operation: 'bench' });
      const view = block.view();
      view[i % floats] = i;
      block.release();
    });
    const fresh = rate(n, (i) => {
      const view = new Float32Array(floats);
      view[i % floats] = i;
    });
    const goal = bytes >= 4 << 20 ? ` (goal >= 5x: ${pooled / fresh >= 5 ? 'met' : 'missed'})` : '';
    console.log(`memory  host block ${label}, allocate + view + release: gama-native ${fmt(pooled)} ops/s | new Float32Array ${fmt(fresh)} ops/s | ratio ${(pooled / fresh).toFixed(1)}x${goal}`);
    rows.push({ name: `host block ${label}`, gamaOpsPerSec: pooled, freshOpsPerSec: fresh, ratio: pooled / fresh });
  }
  rows.push(...await allocateRelease(mm));
  const stats = mm.getStats();
  console.log(`memory  host pool after the run: hit rate ${(stats.hostPool.hitRate * 100).toFixed(2)}% | mean allocation inside the manager ${stats.meanHostAllocationNs.toFixed(0)} ns`);
  return rows;
}

/**
 * Nanoseconds per 1 MiB allocate + release from JS (no view), with plain
 * arguments and with `{ operation }`; the loop yields every 1,024 pairs so
 * the registry that counts leaked blocks does its work inside the timing.
 */
async function allocateRelease(mm) {
  const tick = () => new Promise((resolve) => setImmediate(resolve));
  const time = async (op) => {
    let best = Infinity;
    for (let round = 0; round < 4; round++) {
      const started = process.hrtime.bigint();
      for (let i = 0; i < 100_000; i++) {
        op();
        if ((i & 1023) === 1023) await tick();
      }
      await tick();
      if (round > 0) best = Math.min(best, Number(process.hrtime.bigint() - started) / 100_000);
    }
    return best;
  };
  const plain = await time(() => mm.allocate(1 << 20).release());
  const named = await time(() => mm.allocate(1 << 20, { operation: 'bench' }).release());
  console.log(`memory  host block 1 MiB allocate + release from JS: ${plain.toFixed(0)} ns | with { operation } ${named.toFixed(0)} ns (the GPU figure against cuMemAlloc is in the gpu bench)`);
  return [{ name: 'host block 1 MiB allocate + release', plainNs: plain, operationNs: named }];
}

function rustBench() {
  const rows = cargoBench('suballoc');
  for (const r of rows) {
    if (r.strategy) {
      const goal = r.strategy === 'best-fit' ? ` (goal p99 < 2000 ns: ${r.p99Ns < 2000 ? 'met' : 'missed'})` : '';
      console.log(`memory  sub-allocator ${r.strategy}, 1M ops (log-uniform 256 B-64 MiB, half frees): mean ${r.meanNs.toFixed(0)} ns | p99 ${r.p99Ns} ns | fragmentation at end ${r.fragmentation.toFixed(3)}${goal}`);
    } else if (r.gpuSize) {
      console.log(`memory  GPU ${r.gpuSize} allocate/free pair: gama-native pool ${r.poolNs.toFixed(0)} ns | cuMemAlloc/cuMemFree ${r.rawNs.toFixed(0)} ns | ratio ${(r.rawNs / r.poolNs).toFixed(1)}x (goal >= 10x: ${r.rawNs / r.poolNs >= 10 ? 'met' : 'missed'})`);
    } else if (r.gpu === 'skipped') {
      console.log(`memory  GPU pool vs cuMemAlloc: skipped (${r.reason})`);
    }
  }
  return rows;
}

async function run() {
  return { host: await hostBlocks(), rust: rustBench() };
}

module.exports = { run };
