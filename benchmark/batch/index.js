// The batch benchmark: tiny work (MEASURE of 1,000 floats) through the
// BatchProcessor against p-queue and piscina; real work (EXTRACT_FEATURES of
// 2,000 one-second 16 kHz clips) against one-by-one extractFeatures and
// piscina running Meyda; the seed's batch-size table; and the latency of a
// critical item behind 10,000 queued low-priority items. Each measurement
// runs in a process of its own.
'use strict';
const { cargoBench } = require('../cargo_bench.js');
const { execFileSync } = require('node:child_process');
const os = require('node:os');
const path = require('node:path');

function measure(name, ...args) {
  const out = execFileSync(process.execPath, [path.join(__dirname, 'workloads.js'), name, ...args.map(String)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 20,
  });
  return JSON.parse(out.trim().split('\n').pop());
}

/** Nanoseconds per recorded sample with `threads` threads recording at once. */
function recordCost(threads) {
  const rows = cargoBench('record');
  return (rows.find((r) => r.threads === threads) ?? rows.at(-1)).nsPerRecord;
}

const k = (x) => (x >= 1e6 ? `${(x / 1e6).toFixed(2)}M` : x >= 1e3 ? `${(x / 1e3).toFixed(1)}k` : x.toFixed(1));
const verdict = (ok) => (ok ? 'met' : 'missed');

async function run() {
  const threads = os.cpus().length;
  const results = { threads };

  const additems = measure('tiny-additems', 200000).itemsPerSec;
  const additem = measure('tiny-additem', 200000).itemsPerSec;
  const pqueue = measure('tiny-pqueue', 200000).itemsPerSec;
  const piscina = measure('tiny-piscina', 50000).itemsPerSec;
  console.log(`batch  tiny work (level meter over 1,000 floats), ${threads} threads, 200k items via addItems: gama-native ${k(additems)} items/s | p-queue ${k(pqueue)} | piscina ${k(piscina)} | ratio ${(additems / pqueue).toFixed(1)}x p-queue, ${(additems / piscina).toFixed(1)}x piscina (goal >= 10x p-queue, 15x piscina: ${verdict(additems >= 10 * pqueue && additems >= 15 * piscina)})`);
  console.log(`batch  tiny work, 200k addItem calls + Promise.all: gama-native ${k(additem)} items/s | p-queue ${k(pqueue)} | piscina ${k(piscina)} | ratio ${(additem / pqueue).toFixed(1)}x p-queue, ${(additem / piscina).toFixed(1)}x piscina (goal >= 2x p-queue, 15x piscina: ${verdict(additem >= 2 * pqueue && additem >= 15 * piscina)})`);
  results.tiny = { additems, additem, pqueue, piscina };

  const clips = 2000;
  const batch = measure('extract-batch', clips, 8);
  const sync = measure('extract-sync', clips).clipsPerSec;
  const meyda = measure('extract-piscina-meyda', 200).clipsPerSec;
  console.log(`batch  EXTRACT_FEATURES (logMel + mfcc, nFft 512, hop 160, 64 mels), ${clips} one-second 16 kHz clips: BatchProcessor ${k(batch.clipsPerSec)} clips/s | one-by-one extractFeatures ${k(sync)} | piscina + Meyda ${k(meyda)} | ratio ${(batch.clipsPerSec / sync).toFixed(2)}x one-by-one, ${(batch.clipsPerSec / meyda).toFixed(0)}x piscina+Meyda, ${(batch.clipsPerSec / 42.3).toFixed(0)}x the seed's 42.3 items/s (goal >= 1.8x, 100x: ${verdict(batch.clipsPerSec >= 1.8 * sync && batch.clipsPerSec >= 100 * meyda)})`);
  results.extract = { batch: batch.clipsPerSec, sync, meyda };

  results.batchSizes = [];
  for (const size of [1, 4, 8, 16]) {
    const r = size === 8 ? batch : measure('extract-batch', clips, size);
    console.log(`batch  batch-size table, maxBatchSize ${size}: ${k(r.clipsPerSec)} clips/s | peak RSS ${r.peakRssMiB.toFixed(0)} MiB | CPU ${r.cpuPercent.toFixed(0)}% | mean batch ${r.averageBatchSize.toFixed(1)}`);
    results.batchSizes.push({ maxBatchSize: size, ...r });
  }

  // Profiler overhead, two ways. Measured: recording on against off in
  // paired runs within one process (on a shared machine the pairs still
  // scatter by several percent either way). Derived: what recording costs
  // per sample with every core recording at once (a Rust benchmark), times
  // the samples an item records (MEASURE: its batch's wait and run series;
  // EXTRACT_FEATURES: those and features.extract), against the CPU time an
  // item takes in the runs above (threads / throughput).
  const tinyOverhead = measure('overhead-tiny', 50000).overheadPercent;
  const extractOverhead = measure('overhead-extract', Math.min(clips, 600)).overheadPercent;
  const record = recordCost(threads);
  const tinyShare = (2 * record) / ((threads / additems) * 1e9) * 100;
  const extractShare = (3 * record) / ((threads / batch.clipsPerSec) * 1e9) * 100;
  console.log(`batch  profiler overhead, recording on vs off: derived ${tinyShare.toFixed(2)}% on tiny addItems and ${extractShare.toFixed(3)}% on EXTRACT_FEATURES (${record.toFixed(0)} ns per sample with ${threads} threads recording at once) | measured in paired runs ${tinyOverhead.toFixed(1)}% and ${extractOverhead.toFixed(1)}% (goal < 2%: ${verdict(tinyShare < 2 && extractShare < 2)})`);
  results.profilerOverhead = { tinyPercent: tinyShare, extractPercent: extractShare, measuredTinyPercent: tinyOverhead, measuredExtractPercent: extractOverhead, nsPerRecord: record };

  const p = measure('priority', 10000);
  console.log(`batch  priority: one 'critical' ANALYZE behind 10,000 queued 'low' ones: ${p.criticalMs.toFixed(2)} ms | same item on an idle processor ${p.idleMs.toFixed(2)} ms | the backlog took ${p.backlogDrainMs.toFixed(0)} ms`);
  results.priority = p;
  return results;
}

module.exports = { run };
