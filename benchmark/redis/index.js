// The Redis suite: AudioFeatureCache's second tier against node-redis on the
// same private redis-server in the same run: L2 hits from JS (getAsync and
// getManyAsync of 128-float vectors vs GET/MGET decoded to Float32Array),
// four processes sharing features over the same clips (computations avoided
// and wall time vs four L1-only processes), and compression of log-mel
// matrices at the default threshold.
'use strict';
const { execFile, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { promisify } = require('node:util');

const { AudioFeatureCache, extractFeatures } = require('../..');
const { paired } = require('../paired.js');
const { redisAvailable, startRedis } = require('../../scripts/redis-server.js');

const fmt = (n) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1000 ? `${(n / 1000).toFixed(1)}k` : n.toFixed(0));
const KEYS = 10_000;
const WIDTH = 128;
// Alternating pairs per comparison (../paired.js): on this shared machine,
// separate best-of runs of the two clients gave ratios from 0.46x to 0.70x
// for the same build.
const PAIRS = 9;

/** CPU time of the calling (JS) thread in ns (the kernel's per-thread clock), where Linux tells it; else null. */
function threadCpuNs() {
  try {
    return Number(fs.readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0]);
  } catch {
    return null;
  }
}

/**
 * gama-native's and node-redis' runs (each doing `ops` operations) in
 * alternating pairs: the median ratio, each side's best ops/s, and each
 * side's JS-thread CPU µs per op over all its runs.
 */
async function compare(ops, gama, redis) {
  const cpu = { gama: 0, redis: 0 };
  const runs = { gama: 0, redis: 0 };
  const timed = (side, body) => async () => {
    const c0 = threadCpuNs();
    await body();
    if (c0 !== null) cpu[side] += threadCpuNs() - c0;
    runs[side]++;
  };
  const r = await paired(PAIRS, [ops, timed('gama', gama)], [ops, timed('redis', redis)]);
  const per = (side) => (threadCpuNs() === null ? null : cpu[side] / 1000 / (runs[side] * ops));
  return { ratio: r.ratio, gama: { rate: r.best.a, cpuUs: per('gama') }, redis: { rate: r.best.b, cpuUs: per('redis') } };
}

/**
 * The round trip itself: redis-benchmark (hiredis, a C client on the JS
 * thread's footing: no thread in between) doing GET and MGET of 64 keys
 * one at a time, in values/s; null without redis-benchmark.
 */
function floor(port) {
  const rate = (args) => {
    const out = spawnSync('redis-benchmark', ['-p', String(port), '-n', '20000', '-c', '1', '-q', ...args], { encoding: 'utf8' });
    const found = /([\d.]+) requests per second/.exec(out.stdout ?? '');
    return found ? Number(found[1]) : null;
  };
  const keys = Array.from({ length: 64 }, (_, i) => `raw:${i}`);
  const get = rate(['GET', 'raw:1']);
  const mget = rate(['MGET', ...keys]);
  return get === null || mget === null ? null : { get, mget: mget * 64 };
}

/** Runs `task(i)` for i in 0..n with `inFlight` pending at once. */
async function pool(n, inFlight, task) {
  let next = 0;
  const worker = async () => {
    while (next < n) await task(next++);
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
}

async function hits(url, port, line) {
  const { createClient, RESP_TYPES } = require('redis');
  const client = createClient({ url }).withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });
  client.on('error', () => {});
  await client.connect();
  const writer = new AudioFeatureCache({ redis: { url, keyPrefix: 'bench' } });
  const vectors = Array.from({ length: KEYS }, (_, i) => Float32Array.from({ length: WIDTH }, (_, j) => Math.sin(i + j)));
  const keys = vectors.map((_, i) => `vec:${i}`);
  for (let i = 0; i < KEYS; i++) writer.set(keys[i], vectors[i]);
  await writer.flush();
  // node-redis stores the raw float bytes, as a user without gama-native would.
  for (let i = 0; i < KEYS; i += 500) {
    const multi = client.multi();
    for (let j = i; j < i + 500; j++) multi.set(`raw:${j}`, Buffer.from(vectors[j].buffer));
    await multi.exec();
  }
  const decode = (buf) => new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  // L1 is cleared before each round, so every read is an L2 hit.
  const reader = new AudioFeatureCache({ redis: { url, keyPrefix: 'bench' }, maxEntries: KEYS * 2 });

  const seqN = 2000;
  const seq = await compare(
    seqN,
    async () => {
      reader.clear();
      for (let i = 0; i < seqN; i++) await reader.getAsync(keys[i]);
    },
    async () => {
      for (let i = 0; i < seqN; i++) decode(await client.get(`raw:${i}`));
    },
  );
  const [gamaSeq, redisSeq] = [seq.gama.rate, seq.redis.rate];
  const median = `median of ${PAIRS} alternating pairs`;
  line(`L2 hit, one awaited getAsync at a time (128-float vector, loopback): gama-native ${fmt(gamaSeq)} gets/s | node-redis GET+decode ${fmt(redisSeq)} gets/s | ratio ${seq.ratio.toFixed(2)}x node-redis (${median})`);

  const cpu = (g, r) =>
    g.cpuUs === null ? '' : ` | JS-thread CPU per value: gama-native ${g.cpuUs.toFixed(2)} µs, node-redis ${r.cpuUs.toFixed(2)} µs (${(r.cpuUs / g.cpuUs).toFixed(2)}x less)`;
  const gets = {};
  for (const inFlight of [64, 256]) {
    const { ratio, gama: g, redis: r } = await compare(
      KEYS,
      async () => {
        reader.clear();
        await pool(KEYS, inFlight, (i) => reader.getAsync(keys[i]));
      },
      () => pool(KEYS, inFlight, async (i) => decode(await client.get(`raw:${i}`))),
    );
    gets[inFlight] = { gama: g, redis: r, ratio };
    line(`L2 hit, ${inFlight} getAsync in flight (128-float vector): gama-native ${fmt(g.rate)} gets/s | node-redis GET+decode ${fmt(r.rate)} gets/s | ratio ${ratio.toFixed(2)}x node-redis (${median}; goal >= 2x)${cpu(g, r)}`);
  }

  const batch = 64;
  const batches = KEYS / batch;
  const rawKeys = keys.map((_, i) => `raw:${i}`);
  const many = {};
  for (const inFlight of [1, 16]) {
    const { ratio, gama: g, redis: r } = await compare(
      KEYS,
      async () => {
        reader.clear();
        await pool(batches, inFlight, (b) => reader.getManyAsync(keys.slice(b * batch, (b + 1) * batch)));
      },
      () => pool(batches, inFlight, async (b) => (await client.mGet(rawKeys.slice(b * batch, (b + 1) * batch))).map(decode)),
    );
    many[inFlight] = { gama: g, redis: r, ratio };
    const how = inFlight === 1 ? 'one call at a time' : `${inFlight} calls in flight`;
    line(`L2 hit, getManyAsync of ${batch} keys, ${how}: gama-native ${fmt(g.rate)} values/s | node-redis MGET+decode ${fmt(r.rate)} values/s | ratio ${ratio.toFixed(2)}x node-redis (${median}; goal >= 2x)${cpu(g, r)}`);
  }
  const bound = floor(port);
  if (bound) {
    line(`round-trip floor on this machine, one request at a time (redis-benchmark, C client, no thread hop): GET ${fmt(bound.get)} gets/s | MGET of 64 ${fmt(bound.mget)} values/s = ${(bound.mget / many[1].redis.rate).toFixed(2)}x node-redis one call at a time`);
  }
  const l2 = reader.getStats().l2;
  line(`L2 round-trip latency seen by gama-native: p50 ${l2.latencyP50Ms.toFixed(3)} ms | p95 ${l2.latencyP95Ms.toFixed(3)} ms | p99 ${l2.latencyP99Ms.toFixed(3)} ms over ${fmt(l2.roundTrips)} round trips`);
  client.destroy();
  return { gamaSeq, redisSeq, seqRatio: seq.ratio, gets, many, floor: bound, latency: l2 };
}

async function processes(url, line) {
  const run = promisify(execFile);
  const script = path.join(__dirname, 'workloads.js');
  const CLIPS = Number(process.env.GAMA_REDIS_CLIPS ?? 1000);
  const PROCS = 4;
  const fleet = async (target, prefix) => {
    const t0 = performance.now();
    const outs = await Promise.all(
      Array.from({ length: PROCS }, (_, p) => run(process.execPath, [script, target, prefix, String(CLIPS), String(p + 1), '8'], { maxBuffer: 1 << 20 })),
    );
    const wallMs = performance.now() - t0;
    const results = outs.map((o) => JSON.parse(o.stdout));
    return { wallMs, computed: results.reduce((s, r) => s + r.computed, 0), results };
  };
  const shared = await fleet(url, `fleet-${Date.now()}`);
  const alone = await fleet('none', 'none');
  const avoided = 1 - shared.computed / (PROCS * CLIPS);
  line(`${PROCS} processes over the same ${fmt(CLIPS)} clips (5 s, logMel+mfcc, getOrCompute, 8 in flight each): gama-native with Redis computed ${shared.computed} (${(avoided * 100).toFixed(1)}% avoided) in ${(shared.wallMs / 1000).toFixed(2)} s | L1 only computed ${alone.computed} in ${(alone.wallMs / 1000).toFixed(2)} s | ratio ${(alone.wallMs / shared.wallMs).toFixed(2)}x L1-only wall time (goal >= 70% avoided)`);
  return { clips: CLIPS, processes: PROCS, shared, alone, avoided };
}

async function compression(url, line) {
  const options = { sampleRate: 16000, nFft: 512, hopLength: 160, nMels: 64, features: ['logMel'] };
  const mats = Array.from({ length: 200 }, (_, i) => {
    const x = new Float32Array(16000).map((_, j) => 0.5 * Math.sin((2 * Math.PI * (100 + 7 * i) * j) / 16000) * (j % 4000 < 3000 ? 1 : 0));
    return extractFeatures(x, options).logMel.data;
  });
  const rows = [];
  for (const compression of ['none', 'lz4', 'zstd']) {
    const cache = new AudioFeatureCache({ redis: { url, keyPrefix: `cmp-${compression}`, compression } });
    const t0 = performance.now();
    mats.forEach((m, i) => cache.set(`m${i}`, m));
    await cache.flush();
    const writeMs = performance.now() - t0;
    const reader = new AudioFeatureCache({ redis: { url, keyPrefix: `cmp-${compression}` } });
    const t1 = performance.now();
    await reader.getManyAsync(mats.map((_, i) => `m${i}`));
    const readMs = performance.now() - t1;
    const s = cache.getStats().l2;
    rows.push({ compression, ratio: s.compressionRatio, bytesSent: s.bytesSent, writeUs: (writeMs * 1000) / mats.length, readUs: (readMs * 1000) / mats.length });
  }
  const [none, lz4, zstd] = rows;
  const bytes = mats[0].byteLength;
  line(`compression of log-mel matrices (64 x 101 floats, ${fmt(bytes)} B, threshold 1 KiB): gama-native lz4 ${lz4.ratio.toFixed(2)}x | zstd ${zstd.ratio.toFixed(2)}x | bytes to Redis lz4 ${fmt(lz4.bytesSent)} vs none ${fmt(none.bytesSent)}`);
  line(`compression cost per matrix (write + flush, read back): gama-native lz4 ${lz4.writeUs.toFixed(1)} µs | none ${none.writeUs.toFixed(1)} µs write, ${none.readUs.toFixed(1)} µs read | lz4 read ${lz4.readUs.toFixed(1)} µs | zstd write ${zstd.writeUs.toFixed(1)} µs, read ${zstd.readUs.toFixed(1)} µs`);
  return rows;
}

async function run() {
  const line = (text) => console.log(`redis  ${text}`);
  if (!redisAvailable()) {
    line('skipped: redis-server is not installed (apt-get install redis-server)');
    return { skipped: true };
  }
  const server = await startRedis();
  try {
    line(`workload: a private redis-server ${server.url} on loopback; node-redis 5 is the peer`);
    return {
      hits: await hits(server.url, server.port, line),
      processes: await processes(server.url, line),
      compression: await compression(server.url, line),
    };
  } finally {
    await server.close();
  }
}

module.exports = { run };
