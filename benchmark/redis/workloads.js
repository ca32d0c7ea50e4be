// One process of the Redis suite's multi-process run: extracts features of
// the same clips as its siblings through getOrCompute, in an order of its
// own, and prints what it computed and how long it took (JSON).
//   node workloads.js <url|none> <prefix> <clips> <seed> <inFlight>
'use strict';
const { AudioFeatureCache, extractFeatures } = require('../..');

const [url, prefix, clipsArg, seedArg, inFlightArg] = process.argv.slice(2);
const CLIPS = Number(clipsArg);
const IN_FLIGHT = Number(inFlightArg);
const SECONDS = 5;
const options = { sampleRate: 16000, nFft: 512, hopLength: 160, nMels: 64, nMfcc: 13, features: ['logMel', 'mfcc'] };

/** Clip `i`: the same samples in every process. */
function clip(i) {
  let s = (i + 1) * 2654435761 >>> 0 || 1;
  const out = new Float32Array(16000 * SECONDS);
  for (let j = 0; j < out.length; j++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    out[j] = 0.4 * Math.sin((2 * Math.PI * (110 + i) * j) / 16000) + (s / 2 ** 32 - 0.5) * 0.05;
  }
  return out;
}

/** 0..n-1 shuffled by a seeded xorshift. */
function order(n, seed) {
  const ids = Array.from({ length: n }, (_, i) => i);
  let s = seed >>> 0 || 1;
  for (let i = n - 1; i > 0; i--) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    const j = s % (i + 1);
    [ids[i], ids[j]] = [ids[j], ids[i]];
  }
  return ids;
}

async function main() {
  const cache = new AudioFeatureCache(url === 'none' ? {} : { redis: { url, keyPrefix: prefix } });
  const ids = order(CLIPS, Number(seedArg));
  const audio = ids.map(clip);
  let computed = 0;
  const started = performance.now();
  let next = 0;
  async function worker() {
    while (next < ids.length) {
      const k = next++;
      const key = AudioFeatureCache.keyFor(audio[k], options);
      await cache.getOrCompute(key, () => {
        computed++;
        return extractFeatures(audio[k], options);
      });
    }
  }
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  await cache.flush();
  const wallMs = performance.now() - started;
  const l2 = cache.getStats().l2;
  process.stdout.write(JSON.stringify({ computed, wallMs, l2Hits: l2?.hits ?? 0 }));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
