// One measurement of the scaling benchmark per process, at a given thread
// count (RAYON_NUM_THREADS sizes extractFeaturesBatch's pool; the
// BatchProcessor gets `threads`), printing one JSON object.
'use strict';
const fs = require('node:fs');
const { extractFeatures, extractFeaturesBatch, BatchProcessor, BatchOperationType } = require('../../index.js');
const { paired } = require('../paired.js');

const SR = 16000;
const FEATURES = { sampleRate: SR, nFft: 512, hopLength: 160, nMels: 64, nMfcc: 13, features: ['logMel', 'mfcc', 'rms', 'zcr', 'spectralCentroid'] };

/** `n` distinct one-second clips (a tone with a little noise each). */
function clips(n, len = SR) {
  return Array.from({ length: n }, (_, c) => {
    const a = new Float32Array(len);
    for (let i = 0; i < len; i++) a[i] = 0.5 * Math.sin((i * (220 + c)) / SR * 2 * Math.PI) + 0.01 * Math.sin(i * 12.9898 + c);
    return a;
  });
}

/**
 * Milliseconds the JS thread has run on a CPU: the kernel's per-thread
 * scheduler clock on Linux (ns resolution; the JS thread's tid is the
 * pid), else the event loop's active time (which also counts time the
 * thread waits for a core).
 */
function jsThreadMs() {
  try {
    const stat = fs.readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8');
    return Number(stat.split(' ')[0]) / 1e6;
  } catch {
    return performance.eventLoopUtilization().active;
  }
}

/**
 * Best (shortest) seconds of `rounds` runs after one warm-up run, and the
 * JS thread's CPU time in that run: the serial part every item pays on the
 * one JS thread.
 */
async function best(rounds, run) {
  await run();
  let t = Infinity;
  let jsMs = 0;
  for (let r = 0; r < rounds; r++) {
    const js = jsThreadMs();
    const started = process.hrtime.bigint();
    await run();
    const s = Number(process.hrtime.bigint() - started) / 1e9;
    if (s < t) {
      t = s;
      jsMs = jsThreadMs() - js;
    }
  }
  return { s: t, jsMs };
}

/** What a case reports: throughput and the JS thread's ns per item. */
function rate(n, { s, jsMs }) {
  return { perSec: n / s, jsNsPerItem: (jsMs * 1e6) / n };
}

const cases = {
  /** extractFeaturesBatch over `n` clips: audio-seconds per second. */
  async batch(n) {
    const data = clips(n);
    return rate(n, await best(3, () => extractFeaturesBatch(data, FEATURES)));
  },
  /** The same clips one by one on the JS thread (the 1-thread reference of the processor). */
  async single(n) {
    const data = clips(Math.min(n, 1000));
    return rate(data.length, await best(3, async () => { for (const c of data) extractFeatures(c, FEATURES); }));
  },
  /** BatchProcessor EXTRACT_FEATURES via addItems: clips per second. */
  async processor(n, threads) {
    const bp = new BatchProcessor({ threads, maxBatchSize: 16, maxConcurrentBatches: Math.max(4, threads * 2), featureOptions: FEATURES });
    const data = clips(n);
    const r = await best(3, () => bp.addItems(BatchOperationType.EXTRACT_FEATURES, data));
    await bp.close();
    return rate(n, r);
  },
  /** The processor at `threads` against one-by-one extractFeatures in alternating pairs (../paired.js). */
  async paired(n, threads, pairs = 9) {
    const bp = new BatchProcessor({ threads, maxBatchSize: 16, maxConcurrentBatches: Math.max(4, threads * 2), featureOptions: FEATURES });
    const data = clips(n);
    const one = data.slice(0, 1000);
    const processor = [data.length, () => bp.addItems(BatchOperationType.EXTRACT_FEATURES, data)];
    const single = [one.length, async () => { for (const c of one) extractFeatures(c, FEATURES); }];
    await processor[1]();
    await single[1]();
    const { ratio } = await paired(pairs, processor, single);
    await bp.close();
    return { ratio, pairs };
  },
  /** BatchProcessor MEASURE (1,000 floats each) via addItems: items per second. */
  async measure(n, threads) {
    const bp = new BatchProcessor({ threads });
    const data = clips(n, 1000);
    const r = await best(3, () => bp.addItems(BatchOperationType.MEASURE, data));
    await bp.close();
    return rate(n, r);
  },
};

/** p-queue running the same level meter in JS at `threads` concurrency (MEASURE's peer). */
cases.pqueue = async (n, threads) => {
  const { default: PQueue } = await import('p-queue');
  const { measure } = require('../batch/work.js');
  const queue = new PQueue({ concurrency: threads });
  const data = clips(n, 1000);
  return rate(n, await best(3, () => Promise.all(data.map((a) => queue.add(async () => measure(a))))));
};

const [name, n, threads] = process.argv.slice(2);
cases[name](Number(n), Number(threads)).then(
  (r) => process.stdout.write(JSON.stringify(r)),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
