// The GPU benchmark: extractFeaturesBatch with device 'cuda' against
// torchaudio on the same GPU in the same run (benchmark/gpu/torchaudio_gpu.py),
// for 64 x 1 s, 1,024 x 1 s and 16 x 60 s: with the copies in and out (what
// a caller waits for) and on the device alone (CUDA event times, `gpuTime`);
// and against the CPU path on one core and on all cores; and a pooled GPU
// block allocated and released from JS against cuMemAlloc + cuMemFree.
// Without a GPU it prints one line saying why and measures nothing.
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const os = require('node:os');
const path = require('node:path');

const g = require('../../index.js');

const fmt = (n) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1000 ? `${(n / 1000).toFixed(1)}k` : n.toFixed(1));
const SR = 16000;
// torchaudio's pipeline: MelSpectrogram + AmplitudeToDB (top_db 80) + MFCC.
const OPTIONS = { sampleRate: SR, nFft: 512, hopLength: 160, nMels: 64, nMfcc: 13, features: ['logMel', 'mfcc'] };
const BATCHES = [
  { count: 64, seconds: 1, goal: { withCopies: 2 } },
  { count: 1024, seconds: 1, goal: { onDevice: 1.5 } },
  { count: 16, seconds: 60, goal: {} },
];

function clips(count, seconds) {
  return Array.from({ length: count }, (_, c) => {
    const a = new Float32Array(SR * seconds);
    let x = 0x9e3779b9 ^ (c * 2654435761);
    for (let i = 0; i < a.length; i++) {
      x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
      a[i] = 0.3 * Math.sin(i * (0.03 + c * 0.001)) + ((x >>> 0) / 2 ** 32 - 0.5) * 0.1;
    }
    return a;
  });
}

/** Runs `fn` until ~budget seconds are spent (at least 5 times, after a warm-up); the best run's seconds. */
async function bestOf(fn, budget = 1.5) {
  await fn();
  let best = Infinity;
  let spent = 0;
  for (let runs = 0; runs < 5 || (spent < budget && runs < 200); runs++) {
    const t = process.hrtime.bigint();
    await fn();
    const took = Number(process.hrtime.bigint() - t) / 1e9;
    spent += took;
    best = Math.min(best, took);
  }
  return best;
}

/** The best wall time of a batch on `device` and, on the GPU, the best device (kernel) time. */
async function timeBatch(batch, device) {
  let onDevice = Infinity;
  const wall = await bestOf(async () => {
    const results = await g.extractFeaturesBatch(batch, { ...OPTIONS, device });
    if (results.device !== device) throw new Error(`asked for ${device}, ran on ${results.device}`);
    if (results.gpuTime) onDevice = Math.min(onDevice, results.gpuTime.computeMs / 1e3);
  });
  return { wall, onDevice: Number.isFinite(onDevice) ? onDevice : wall };
}

async function noGpu() {
  try {
    await g.extractFeaturesBatch([new Float32Array(1600)], { ...OPTIONS, device: 'cuda' });
    return null;
  } catch (err) {
    if (err.code === 'E_NO_GPU') return err.message;
    throw err;
  }
}

async function run() {
  const line = (text) => console.log(`gpu  ${text}`);
  const why = await noGpu();
  if (why) {
    line(`skipped: ${why} (scripts/gpu-check.sh runs this suite on a machine with an NVIDIA GPU)`);
    return { skipped: why };
  }
  const hasTorch = spawnSync('python3', ['-c', 'import torch, torchaudio; assert torch.cuda.is_available()'], { stdio: 'ignore' }).status === 0;
  let torch = [];
  if (hasTorch) {
    const out = execFileSync('python3', [path.join(__dirname, 'torchaudio_gpu.py'), ...BATCHES.map((b) => `${b.count}x${b.seconds}`)], { encoding: 'utf8', maxBuffer: 1 << 20 });
    torch = out.trim().split('\n').map((l) => JSON.parse(l));
  } else {
    line('torchaudio with CUDA not found: its column is skipped');
  }
  const results = { batches: [] };
  // The CPU path on one core: one-by-one extractFeatures on this thread.
  const one = clips(8, 1);
  const single = await bestOf(async () => { for (const c of one) g.extractFeatures(c, OPTIONS); }, 1);
  const singlePerSec = one.length / single;
  for (const b of BATCHES) {
    const batch = clips(b.count, b.seconds);
    const audio = b.count * b.seconds;
    const gpu = await timeBatch(batch, 'cuda');
    const cpu = await timeBatch(batch, 'cpu');
    const t = torch.find((x) => x.clips === b.count && x.seconds === b.seconds);
    const name = `${b.count.toLocaleString('en-US')} x ${b.seconds} s`;
    const withCopies = audio / gpu.wall;
    const onDevice = audio / gpu.onDevice;
    const goal = (key) => (b.goal[key] ? ` (goal >= ${b.goal[key]}x)` : '');
    line(`${name} including copies: gama-native ${fmt(withCopies)} audio-s/s${t ? ` | torchaudio ${fmt(t.withCopies)} | ratio ${(withCopies / t.withCopies).toFixed(2)}x torchaudio${goal('withCopies')}` : ''} | ${(gpu.wall * 1e3).toFixed(2)} ms per batch`);
    line(`${name} on the device: gama-native ${fmt(onDevice)} audio-s/s${t ? ` | torchaudio ${fmt(t.onDevice)} | ratio ${(onDevice / t.onDevice).toFixed(2)}x torchaudio${goal('onDevice')}` : ''}`);
    line(`${name} vs the CPU path: gama-native ${fmt(withCopies)} audio-s/s | CPU on ${os.cpus().length} cores ${fmt(audio / cpu.wall)} | CPU one core ${fmt(singlePerSec)} | ratio ${(withCopies / (audio / cpu.wall)).toFixed(1)}x all cores, ${(withCopies / singlePerSec).toFixed(0)}x one core (goal >= 100x one core)`);
    results.batches.push({ count: b.count, seconds: b.seconds, withCopies, onDevice, cpu: audio / cpu.wall, single: singlePerSec, torch: t ?? null });
  }
  // Where 'auto' should switch: wall time per batch on each device for
  // small batches (AUTO_MIN_FRAMES is 2,048 frames, about 20 one-second clips).
  const crossover = [];
  for (const count of [2, 8, 20, 48]) {
    const batch = clips(count, 1);
    const gpu = await timeBatch(batch, 'cuda');
    const cpu = await timeBatch(batch, 'cpu');
    crossover.push(`${count} x 1 s (${count * 101} frames): cuda ${(gpu.wall * 1e3).toFixed(2)} ms, cpu ${(cpu.wall * 1e3).toFixed(2)} ms`);
    results.crossover = [...(results.crossover ?? []), { count, gpu: gpu.wall, cpu: cpu.wall }];
  }
  line(`where 'auto' should switch (wall time per batch): ${crossover.join(' | ')}`);
  results.blocks = await gpuBlocks(line);
  return results;
}

/**
 * A pooled 1 MiB GPU block allocated and released from JS against
 * cuMemAlloc + cuMemFree from Python through ctypes (cuda_raw.py), both
 * per pair; the JS loop yields every 1,024 pairs so the registry that
 * counts leaked blocks does its work inside the timing.
 */
async function gpuBlocks(line) {
  const bytes = 1 << 20;
  const pairs = 100_000;
  const mm = new g.GAMAMemoryManager({ device: 'cuda' });
  const tick = () => new Promise((resolve) => setImmediate(resolve));
  let best = Infinity;
  for (let round = 0; round < 4; round++) {
    const started = process.hrtime.bigint();
    for (let i = 0; i < pairs; i++) {
      mm.allocate(bytes, { device: 'gpu' }).release();
      if ((i & 1023) === 1023) await tick();
    }
    await tick();
    if (round > 0) best = Math.min(best, Number(process.hrtime.bigint() - started) / pairs);
  }
  const raw = spawnSync('python3', [path.join(__dirname, 'cuda_raw.py'), String(bytes), '20000'], { encoding: 'utf8' });
  const rawNs = raw.status === 0 ? JSON.parse(raw.stdout).pairNs : null;
  const peer = rawNs ? ` | cuMemAlloc + cuMemFree (Python ctypes) ${rawNs.toFixed(0)} ns | ratio ${(rawNs / best).toFixed(1)}x (goal >= 5x)` : ` | cuMemAlloc peer not run: ${(raw.stderr || raw.error?.message || '').trim().split('\n').pop()}`;
  line(`GPU block 1 MiB allocate + release from JS: gama-native ${best.toFixed(0)} ns${peer}`);
  return { bytes, jsPairNs: best, rawPairNs: rawNs };
}

module.exports = { run };
