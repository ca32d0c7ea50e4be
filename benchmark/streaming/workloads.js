// One measurement of the streaming benchmark per process, printing one JSON
// object. The parent pins capacity runs to one core (taskset) with one pool
// thread, so the JS thread and the extraction share that core.
//
//   node workloads.js capacity gama|meyda STREAMS SECONDS
//   node workloads.js throughput gama|offline UTTERANCES SECONDS_EACH
'use strict';
const { FeatureStreams, extractFeatures } = require('../../index.js');
const { setupMeyda } = require('../meyda.js');

const SR = 16000;
const CHUNK = 320; // 20 ms
const FRAME = 512;
const HOP = 160;
const OPTIONS = { sampleRate: SR, nFft: FRAME, hopLength: HOP, nMels: 64, nMfcc: 13, features: ['logMel', 'mfcc', 'rms', 'zcr', 'spectralCentroid'] };
const MEYDA_FEATURES = ['melBands', 'mfcc', 'rms', 'zcr', 'spectralCentroid'];

/** `seconds` of speech-like audio (a gliding tone in noise), different per seed. */
function speech(seconds, seed) {
  const a = new Float32Array(Math.round(seconds * SR));
  let s = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < a.length; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    const t = i / SR;
    a[i] = 0.4 * Math.sin(2 * Math.PI * (150 + 40 * seed % 200 + 100 * Math.sin(t)) * t) + (s / 2 ** 32 - 0.5) * 0.05;
  }
  return a;
}

/** Percentile `q` of sorted numbers. */
const pct = (sorted, q) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : 0);

/** The sample after the last one frame `f` covers (frames centred on f * HOP). */
const frameEnd = (f) => f * HOP - FRAME / 2 + FRAME;

/**
 * `n` streams fed in real time: each gets a 20 ms chunk every 20 ms, the
 * streams' arrivals spread over the period. Latency of a frame block: from
 * the moment its last chunk was due to the moment its frames reach JS
 * (so a JS thread that falls behind shows too).
 */
async function capacity(kind, n, seconds) {
  const audio = speech(1, 7);
  const latencies = [];
  const chunksPerStream = Math.floor((seconds * SR) / CHUNK);
  const t0 = performance.now() + 50;
  const due = (i, k) => t0 + (i % 20) + k * 20;
  const record = (i, endSample) => {
    const k = Math.ceil(endSample / CHUNK) - 1;
    latencies.push(performance.now() - due(i, k));
  };
  let push;
  let finish;
  if (kind === 'gama') {
    const streams = new FeatureStreams({ options: OPTIONS, maxConcurrent: n, idleTimeoutMs: null });
    const handles = Array.from({ length: n }, (_, i) =>
      streams.start(`u${i}`, { onFrames: (b) => record(i, frameEnd(b.firstFrame + b.frames - 1)) }),
    );
    push = (i, chunk) => handles[i].push(chunk);
    finish = async () => {
      await Promise.all(handles.map((h) => h.finalize()));
      return streams.getStats();
    };
  } else {
    const Meyda = setupMeyda();
    const state = Array.from({ length: n }, () => ({ buf: new Float32Array(FRAME / 2 + SR * seconds + CHUNK), len: FRAME / 2, next: 0 }));
    push = (i, chunk) => {
      const st = state[i];
      st.buf.set(chunk, st.len);
      st.len += chunk.length;
      while (st.next * HOP + FRAME <= st.len) {
        Meyda.extract(MEYDA_FEATURES, st.buf.subarray(st.next * HOP, st.next * HOP + FRAME));
        st.next++;
      }
      record(i, frameEnd(st.next - 1));
    };
    finish = async () => null;
  }
  const sent = new Array(n).fill(0);
  let lastMs = -1;
  let lag = 0;
  await new Promise((resolve) => {
    const tick = () => {
      const now = performance.now();
      const ms = Math.floor(now - t0);
      for (let m = lastMs + 1; m <= ms; m++) {
        // Streams whose offset is m mod 20 are due their chunk k = floor(m / 20).
        const k = Math.floor(m / 20);
        if (k >= chunksPerStream) continue;
        for (let i = m % 20; i < n; i += 20) {
          if (sent[i] > k) continue;
          const at = (k * CHUNK) % (audio.length - CHUNK);
          push(i, audio.subarray(at, at + CHUNK));
          sent[i] = k + 1;
        }
      }
      lastMs = Math.max(lastMs, ms);
      lag = Math.max(lag, now - t0 - ms);
      if (sent.every((s) => s >= chunksPerStream)) resolve();
      else setTimeout(tick, 1);
    };
    setTimeout(tick, Math.max(0, t0 - performance.now()));
  });
  const stats = await finish();
  // The first second is warm-up (plans, pools, JIT).
  const kept = latencies.slice(Math.floor(latencies.length / seconds)).sort((a, b) => a - b);
  return { streams: n, blocks: latencies.length, p50: pct(kept, 0.5), p95: pct(kept, 0.95), p99: pct(kept, 0.99), nativeP99: stats?.latency.p99 ?? null };
}

/** Audio pushed as fast as the JS thread can in 20 ms chunks, against extractFeatures on each whole utterance. */
async function throughput(kind, n, seconds) {
  const utterances = Array.from({ length: n }, (_, i) => speech(seconds, i + 1));
  const total = n * seconds;
  const run = async () => {
    if (kind === 'offline') {
      for (const u of utterances) extractFeatures(u, OPTIONS);
      return { pushNs: 0 };
    }
    const streams = new FeatureStreams({ options: OPTIONS, maxConcurrent: n, highWaterMark: 1e9 });
    let frames = 0;
    const handles = utterances.map((_, i) => streams.start(`u${i}`, { onFrames: (b) => { frames += b.frames; } }));
    const chunks = Math.ceil((seconds * SR) / CHUNK);
    const started = process.hrtime.bigint();
    for (let k = 0; k < chunks; k++) {
      for (let i = 0; i < n; i++) handles[i].push(utterances[i].subarray(k * CHUNK, (k + 1) * CHUNK));
    }
    const pushNs = Number(process.hrtime.bigint() - started) / (chunks * n);
    await Promise.all(handles.map((h) => h.finalize()));
    if (frames === 0) throw new Error('no frames');
    return { pushNs };
  };
  await run();
  let best = Infinity;
  let pushNs = 0;
  for (let r = 0; r < 3; r++) {
    const started = process.hrtime.bigint();
    const out = await run();
    const s = Number(process.hrtime.bigint() - started) / 1e9;
    if (s < best) {
      best = s;
      pushNs = out.pushNs;
    }
  }
  return { perSec: total / best, pushNs };
}

async function main() {
  const [what, kind, a, b] = process.argv.slice(2);
  const out = what === 'capacity' ? await capacity(kind, Number(a), Number(b)) : await throughput(kind, Number(a), Number(b));
  process.stdout.write(JSON.stringify(out));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
