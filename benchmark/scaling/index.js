// The scaling benchmark: extractFeaturesBatch and the BatchProcessor
// (EXTRACT_FEATURES, MEASURE) at 1, 2, 4, ... threads up to the machine's
// cores, each in its own process; throughput and parallel efficiency
// (throughput / (threads x one thread's)), with torchaudio's curve on the
// same cores when Python has it.
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const os = require('node:os');
const path = require('node:path');

const fmt = (n) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1000 ? `${(n / 1000).toFixed(1)}k` : n.toFixed(0));

function measure(name, n, threads) {
  const out = execFileSync(process.execPath, [path.join(__dirname, 'workloads.js'), name, String(n), String(threads)], {
    encoding: 'utf8',
    env: { ...process.env, RAYON_NUM_THREADS: String(threads) },
    maxBuffer: 1 << 20,
  });
  return JSON.parse(out);
}

/** 1, 2, 4, ... and the core count itself. */
function threadCounts(cores) {
  const counts = [];
  for (let t = 1; t < cores; t *= 2) counts.push(t);
  counts.push(cores);
  return counts;
}

async function run() {
  const line = (text) => console.log(`scaling  ${text}`);
  const cores = os.cpus().length;
  const counts = threadCounts(cores);
  const clips = Number(process.env.GAMA_SCALING_CLIPS ?? 4000);
  const hasTorch = spawnSync('python3', ['-c', 'import torchaudio'], { stdio: 'ignore' }).status === 0;
  line(`workload: ${clips} one-second 16 kHz clips, logMel+mfcc+rms+zcr+centroid, nFft 512, hop 160, 64 mels, 13 MFCCs; efficiency = throughput / (threads x 1 thread)`);
  // Each point also gives the JS thread's CPU ns per item: the serial part
  // that bounds the speed-up (it must stay small against the per-item
  // compute divided by the cores).
  const curve = (label, unit, goal, at) => {
    const points = counts.map((t) => at(t));
    const values = points.map((p) => p.perSec);
    const one = values[0];
    const cells = counts.map((t, i) => `${t} ${t === 1 ? 'thread' : 'threads'} ${fmt(values[i])}${t === 1 ? '' : ` (${(values[i] / (one * t)).toFixed(2)})`}`);
    const top = values[values.length - 1];
    const jsNs = points.at(-1).jsNsPerItem;
    line(`${label}: gama-native ${fmt(top)} ${unit} on ${cores} | ${cells.join(' | ')} | speed-up ${(top / one).toFixed(1)}x (goal ${goal}); JS thread ${fmt(jsNs)} ns/item`);
    return { counts, values, jsNsPerItem: points.map((p) => p.jsNsPerItem) };
  };
  const single = measure('single', clips, 1).perSec;
  line(`one-by-one extractFeatures on the JS thread: gama-native ${fmt(single)} audio-s/s, ${fmt(1e9 / single)} ns/clip all on the JS thread (the reference of the processor's goal)`);
  const results = { cores, single };
  results.batch = curve('extractFeaturesBatch', 'audio-s/s', cores >= 16 ? '>= 12x one thread on 16 cores' : '>= 1.85x on 2 cores', (t) => measure('batch', clips, t));
  results.processor = curve('BatchProcessor EXTRACT_FEATURES', 'clips/s', cores >= 16 ? '>= 10x one-by-one on 16 cores' : '>= 1.8x one-by-one on 2 cores', (t) => measure('processor', clips, t));
  // The ratio from alternating pairs in one process (see 'paired').
  const paired = measure('paired', clips, cores);
  line(`BatchProcessor EXTRACT_FEATURES on ${cores} cores vs one-by-one extractFeatures: gama-native ${fmt(results.processor.values.at(-1))} clips/s | one-by-one ${fmt(single)} | ratio ${paired.ratio.toFixed(2)}x one-by-one (median of ${paired.pairs} alternating pairs in one process; goal ${cores >= 16 ? '>= 10x on 16 cores' : '>= 1.8x on 2 cores'})`);
  results.processorVsSingle = paired.ratio;
  results.measure = curve('BatchProcessor MEASURE (1,000 floats) via addItems', 'items/s', cores >= 16 ? '>= 1M items/s on 16 cores, never falling with threads' : 'never falling with threads', (t) => measure('measure', 100000, t));
  const pqueue = measure('pqueue', 100000, cores).perSec;
  const top = results.measure.values.at(-1);
  line(`MEASURE (1,000 floats) on ${cores} cores: gama-native ${fmt(top)} items/s | p-queue ${fmt(pqueue)} | ratio ${(top / pqueue).toFixed(1)}x p-queue (goal >= 10x)`);
  results.pqueue = pqueue;
  if (hasTorch) {
    const torch = counts.map((t) => JSON.parse(execFileSync('python3', [path.join(__dirname, 'torchaudio_bench.py'), String(t), '1024'], { encoding: 'utf8' })).perSec);
    line(`torchaudio CPU (MelSpectrogram + dB + MFCC, batches of 64): ${counts.map((t, i) => `${t} ${t === 1 ? 'thread' : 'threads'} ${fmt(torch[i])}`).join(' | ')} audio-s/s | gama-native extractFeaturesBatch on ${cores} | vs torchaudio ${(results.batch.values.at(-1) / torch.at(-1)).toFixed(1)}x`);
    results.torchaudio = { counts, values: torch };
  } else {
    line('torchaudio not found: its curve is skipped (it is on the GPU machine; `pip install torchaudio` here)');
  }
  return results;
}

module.exports = { run };
