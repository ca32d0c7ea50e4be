// One side of the features benchmark per process: gama-native or Meyda,
// single-threaded or on every core. Prints one JSON object.
'use strict';
const os = require('node:os');
const path = require('node:path');
const { Worker, isMainThread, parentPort, workerData } = require('node:worker_threads');

const { meydaFrames } = require('../meyda.js');

const SR = 16000;
const OPTIONS = { sampleRate: SR, nFft: 512, hopLength: 160, nMels: 64, nMfcc: 13, features: ['logMel', 'mfcc', 'rms', 'zcr', 'spectralCentroid'] };

/** Deterministic noise-like clips. */
function clips(count, seconds, seed) {
  let s = seed >>> 0;
  return Array.from({ length: count }, () => {
    const y = new Float32Array(Math.round(SR * seconds));
    for (let i = 0; i < y.length; i++) {
      s = (s * 1664525 + 1013904223) >>> 0;
      y[i] = (s / 4294967296 - 0.5) * 0.2;
    }
    return y;
  });
}

/** audio-seconds per wall-second of `run(batch)`, best of 3 after a warm-up. */
async function rate(batch, secondsEach, run) {
  await run(batch.slice(0, 2));
  let best = Infinity;
  for (let r = 0; r < 3; r++) {
    const t = process.hrtime.bigint();
    await run(batch);
    best = Math.min(best, Number(process.hrtime.bigint() - t) / 1e9);
  }
  return (batch.length * secondsEach) / best;
}

const MEYDA_FEATURES = ['mfcc', 'rms', 'zcr', 'spectralCentroid'];

/** Runs `work` over `batch` split across one worker per core. */
function onAllCores(lib, batch) {
  const cores = os.cpus().length;
  const share = Math.ceil(batch.length / cores);
  return Promise.all(Array.from({ length: cores }, (_, w) => new Promise((resolve, reject) => {
    const part = batch.slice(w * share, (w + 1) * share);
    const worker = new Worker(__filename, { workerData: { lib, clips: part } });
    worker.once('message', resolve);
    worker.once('error', reject);
  })));
}

if (!isMainThread) {
  for (const y of workerData.clips) meydaFrames(y, MEYDA_FEATURES);
  parentPort.postMessage('done');
} else {
  const [lib, count] = [process.argv[2], Number(process.argv[3] || 200)];
  (async () => {
    let result;
    if (lib === 'gama') {
      const { extractFeatures, extractFeaturesBatch } = require(path.join(__dirname, '..', '..', 'index.js'));
      const serial = async (b) => { for (const y of b) extractFeatures(y, OPTIONS); };
      result = {
        single1s: await rate(clips(count, 1, 1), 1, serial),
        single60s: await rate(clips(1, 60, 2), 60, serial),
        batch1s: await rate(clips(count * 2, 1, 3), 1, (b) => extractFeaturesBatch(b, OPTIONS)),
      };
    } else {
      const serial = async (b) => { for (const y of b) meydaFrames(y, MEYDA_FEATURES); };
      const few = Math.max(4, Math.round(count / 20));
      result = {
        single1s: await rate(clips(few, 1, 1), 1, serial),
        batch1s: await rate(clips(few * 2, 1, 3), 1, (b) => onAllCores('meyda', b)),
      };
    }
    process.stdout.write(JSON.stringify(result));
  })().catch((err) => { console.error(err); process.exit(1); });
}
