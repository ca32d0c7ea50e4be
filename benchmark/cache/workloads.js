// Workloads of the cache benchmark. Each runs in a process of its own (one
// library per process: a JIT warmed by one library's loop skews the other's
// figures), prints one JSON object, and is started by ./index.js.
'use strict';
const path = require('node:path');
const { LRUCache } = require('lru-cache');
const { AudioFeatureCache } = require(path.join(__dirname, '..', '..', 'index.js'));
const { zipfTrace } = require('./zipf.js');

const DIM = 128;
const KEYS = 10_000;

function keys(n) {
  return Array.from({ length: n }, (_, i) => `feat:${i}`);
}

/** Deterministic random key order shared by both libraries. */
function order(n, count, seed = 1) {
  const out = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    seed = (seed * 1664525 + 1013904223) >>> 0;
    out[i] = seed % n;
  }
  return out;
}

function makeGama(entries, maxMemory = '1GB', policy) {
  return new AudioFeatureCache({ maxEntries: entries, maxMemory, ...(policy ? { policy } : {}) });
}

function fill(cache, names) {
  for (let i = 0; i < names.length; i++) cache.set(names[i], new Float32Array(DIM).fill(i));
}

/** ops/s of `fn(i)` over `iterations`, best of `rounds` after a warm-up. */
function rate(fn, iterations, rounds = 5) {
  for (let i = 0; i < iterations / 4; i++) fn(i);
  let best = 0;
  for (let r = 0; r < rounds; r++) {
    const t = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) fn(i);
    const s = Number(process.hrtime.bigint() - t) / 1e9;
    best = Math.max(best, iterations / s);
  }
  return best;
}

const workloads = {
  get(lib) {
    const names = keys(KEYS);
    const idx = order(KEYS, 1 << 16);
    const cache = lib === 'gama' ? makeGama(KEYS) : new LRUCache({ max: KEYS });
    fill(cache, names);
    let sink = 0;
    const opsPerSec = rate((i) => { sink += cache.get(names[idx[i & 0xffff]]).length; }, 1_000_000);
    return { opsPerSec, sink };
  },

  packed(lib) {
    const names = keys(KEYS);
    const idx = order(KEYS, 64 * 1024, 7);
    const batches = Array.from({ length: 1024 }, (_, b) => Array.from(idx.subarray(b * 64, b * 64 + 64), (k) => names[k]));
    const cache = lib === 'gama' ? makeGama(KEYS) : new LRUCache({ max: KEYS });
    fill(cache, names);
    let sink = 0;
    const read = lib === 'gama'
      ? (b) => { sink += cache.getManyPacked(batches[b & 1023]).data.length; }
      : (b) => {
        const batch = batches[b & 1023];
        const out = new Float32Array(batch.length * DIM);
        for (let i = 0; i < batch.length; i++) {
          const v = cache.get(batch[i]);
          if (v !== undefined) out.set(v, i * DIM);
        }
        sink += out.length;
      };
    const batchesPerSec = rate(read, 20_000);
    return { batchesPerSec, sink };
  },

  hitratio(lib, skew) {
    const trace = zipfTrace({ requests: 1_000_000, keys: 100_000, skew: Number(skew), seed: 42 });
    const capacity = 5_000;
    const value = new Float32Array(1);
    let cache;
    if (lib === 'lru-cache') cache = new LRUCache({ max: capacity });
    else cache = makeGama(capacity, '1GB', lib === 'gama-lru' ? 'lru' : undefined);
    const name = (k) => `k${k}`;
    let hits = 0;
    for (let i = 0; i < trace.length; i++) {
      const key = name(trace[i]);
      if (cache.get(key) !== undefined) hits++;
      else cache.set(key, value);
    }
    return { hitRatio: hits / trace.length };
  },

  memory(lib) {
    const count = 1_000_000;
    const cache = lib === 'gama'
      ? makeGama(count, '2GB', 'lru')
      : new LRUCache({ max: count });
    for (let i = 0; i < count; i++) cache.set(`feat:${i}`, new Float32Array(DIM).fill(i % 997));
    for (let i = 0; i < 3; i++) global.gc();
    let gcMs = Infinity;
    for (let i = 0; i < 3; i++) {
      const t = process.hrtime.bigint();
      global.gc();
      gcMs = Math.min(gcMs, Number(process.hrtime.bigint() - t) / 1e6);
    }
    const usage = process.memoryUsage();
    const check = cache.get('feat:123456');
    return { rss: usage.rss, heapUsed: usage.heapUsed, external: usage.external + usage.arrayBuffers, gcMs, ok: check && check[0] === 123456 % 997 };
  },
};

const [name, ...args] = process.argv.slice(2);
process.stdout.write(JSON.stringify(workloads[name](...args)));
