// One measurement of the batch benchmark per process (so one library's JIT
// warm-up cannot skew another's), printing one JSON object.
'use strict';
const os = require('node:os');
const path = require('node:path');

const { SR, measure, clips } = require('./work.js');
const { paired } = require('../paired.js');
const { BatchProcessor, BatchOperationType, PerformanceProfiler, extractFeatures } = require('../../index.js');

const THREADS = os.cpus().length;
const FEATURES = { sampleRate: SR, nFft: 512, hopLength: 160, nMels: 64, nMfcc: 13, features: ['logMel', 'mfcc'] };

/** Best (shortest) seconds of `rounds` runs of `run` after one warm-up on `warm`. */
async function best(rounds, run, warm) {
  if (warm) await warm();
  let t = Infinity;
  for (let r = 0; r < rounds; r++) {
    const started = process.hrtime.bigint();
    await run();
    t = Math.min(t, Number(process.hrtime.bigint() - started) / 1e9);
  }
  return t;
}

/**
 * Recording on against off in one process, in `pairs` alternating pairs
 * (see ../paired.js): what recording costs, in percent of throughput.
 */
async function pairedOverhead(pairs, run) {
  const profiler = new PerformanceProfiler();
  const turn = (on) => [1, () => ((profiler.enabled = on), run())];
  const { ratio } = await paired(pairs, turn(true), turn(false));
  profiler.enabled = true;
  return { overheadPercent: (1 - ratio) * 100, pairs };
}

const cases = {
  /** Profiler overhead on tiny work: `n` MEASURE items per run. */
  async 'overhead-tiny'(n) {
    const bp = new BatchProcessor({ threads: THREADS });
    const data = clips(n, 1000);
    await bp.addItems(BatchOperationType.MEASURE, data);
    const result = await pairedOverhead(15, () => bp.addItems(BatchOperationType.MEASURE, data));
    await bp.close();
    return result;
  },
  /** Profiler overhead on EXTRACT_FEATURES: `n` one-second clips per run. */
  async 'overhead-extract'(n) {
    const bp = new BatchProcessor({ threads: THREADS, maxBatchSize: 8, featureOptions: FEATURES });
    const data = clips(n, SR);
    await bp.addItems(BatchOperationType.EXTRACT_FEATURES, data);
    const result = await pairedOverhead(9, () => bp.addItems(BatchOperationType.EXTRACT_FEATURES, data));
    await bp.close();
    return result;
  },
  async 'tiny-additems'(n) {
    const bp = new BatchProcessor({ threads: THREADS });
    const data = clips(n, 1000);
    const s = await best(3, () => bp.addItems(BatchOperationType.MEASURE, data), () => bp.addItems(BatchOperationType.MEASURE, data.slice(0, 1000)));
    await bp.close();
    return { itemsPerSec: n / s };
  },
  async 'tiny-additem'(n) {
    const bp = new BatchProcessor({ threads: THREADS });
    const data = clips(n, 1000);
    const run = (m) => {
      const ps = new Array(m);
      for (let i = 0; i < m; i++) ps[i] = bp.addItem(BatchOperationType.MEASURE, data[i]);
      return Promise.all(ps);
    };
    const s = await best(3, () => run(n), () => run(1000));
    await bp.close();
    return { itemsPerSec: n / s };
  },
  async 'tiny-pqueue'(n) {
    const { default: PQueue } = await import('p-queue');
    const queue = new PQueue({ concurrency: THREADS });
    const data = clips(n, 1000);
    const run = (m) => Promise.all(Array.from({ length: m }, (_, i) => queue.add(async () => measure(data[i]))));
    const s = await best(3, () => run(n), () => run(1000));
    return { itemsPerSec: n / s };
  },
  async 'tiny-piscina'(n) {
    const { Piscina } = require('piscina');
    const pool = new Piscina({ filename: path.join(__dirname, 'piscina_worker.js'), maxThreads: THREADS, minThreads: THREADS });
    const data = clips(n, 1000);
    const run = (m) => Promise.all(Array.from({ length: m }, (_, i) => pool.run({ kind: 'measure', data: data[i] })));
    const s = await best(2, () => run(n), () => run(1000));
    await pool.destroy();
    return { itemsPerSec: n / s };
  },
  async 'extract-batch'(n, maxBatchSize = 8) {
    const bp = new BatchProcessor({ threads: THREADS, maxBatchSize, featureOptions: FEATURES });
    const data = clips(n, SR);
    const cpu0 = process.cpuUsage();
    const s = await best(2, () => bp.addItems(BatchOperationType.EXTRACT_FEATURES, data), () => bp.addItems(BatchOperationType.EXTRACT_FEATURES, data.slice(0, 20)));
    const peakRss = process.resourceUsage().maxRSS * 1024;
    const cpu = process.cpuUsage(cpu0);
    const stats = bp.getStats();
    await bp.close();
    const wall = s * 2 + 0.01;
    return { clipsPerSec: n / s, peakRssMiB: peakRss / 2 ** 20, cpuPercent: ((cpu.user + cpu.system) / 1e6 / wall) * 100, averageBatchSize: stats.averageBatchSize };
  },
  /** BatchProcessor EXTRACT_FEATURES against one-by-one extractFeatures in alternating pairs (../paired.js). */
  async 'extract-paired'(n, pairs = 9) {
    const bp = new BatchProcessor({ threads: THREADS, maxBatchSize: 8, featureOptions: FEATURES });
    const data = clips(n, SR);
    const batch = () => bp.addItems(BatchOperationType.EXTRACT_FEATURES, data);
    const sync = async () => {
      for (const y of data) extractFeatures(y, FEATURES);
    };
    await bp.addItems(BatchOperationType.EXTRACT_FEATURES, data.slice(0, 20));
    await sync();
    const r = await paired(pairs, [n, batch], [n, sync]);
    await bp.close();
    return { batch: r.best.a, sync: r.best.b, ratio: r.ratio, pairs };
  },
  async 'extract-piscina-meyda'(n) {
    const { Piscina } = require('piscina');
    const pool = new Piscina({ filename: path.join(__dirname, 'piscina_worker.js'), maxThreads: THREADS, minThreads: THREADS });
    const data = clips(n, SR);
    const run = (m) => Promise.all(data.slice(0, m).map((y) => pool.run({ kind: 'meyda', data: y })));
    const s = await best(1, () => run(n), () => run(4));
    await pool.destroy();
    return { clipsPerSec: n / s };
  },
  async priority(n) {
    const bp = new BatchProcessor({ threads: THREADS });
    const clip = clips(1, SR)[0];
    const latency = async (options) => {
      const started = process.hrtime.bigint();
      await bp.addItem(BatchOperationType.ANALYZE, { audio: clip, sampleRate: SR }, options);
      return Number(process.hrtime.bigint() - started) / 1e6;
    };
    for (let i = 0; i < 20; i++) await latency();
    const idle = [];
    for (let i = 0; i < 50; i++) idle.push(await latency());
    idle.sort((a, b) => a - b);
    const low = Array.from({ length: n }, () => bp.addItem(BatchOperationType.ANALYZE, { audio: clip, sampleRate: SR }, { priority: 'low' }));
    const critical = await latency({ priority: 'critical' });
    const lowStarted = process.hrtime.bigint();
    await Promise.all(low);
    const drainMs = Number(process.hrtime.bigint() - lowStarted) / 1e6;
    await bp.close();
    return { idleMs: idle[idle.length >> 1], criticalMs: critical, backlogDrainMs: drainMs };
  },
};

const [name, n, extra] = process.argv.slice(2);
cases[name](Number(n), extra === undefined ? undefined : Number(extra)).then(
  (result) => console.log(JSON.stringify(result)),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
