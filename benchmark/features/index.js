// The features benchmark: gama-native's extractFeatures against librosa (when
// Python has it: `pip install librosa`) and Meyda, each in its own process.
'use strict';
const { execFileSync, spawnSync } = require('node:child_process');
const os = require('node:os');
const path = require('node:path');

const run = (cmd, args, env) => JSON.parse(execFileSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env }, maxBuffer: 1 << 20 }));
const fmt = (n) => (n >= 1000 ? `${(n / 1000).toFixed(1)}k` : n.toFixed(0));

async function run_() {
  const line = (text) => console.log(`features  ${text}`);
  const cores = os.cpus().length;
  const gama = run(process.execPath, [path.join(__dirname, 'workloads.js'), 'gama', '300']);
  const meyda = run(process.execPath, [path.join(__dirname, 'workloads.js'), 'meyda', '300']);
  const hasLibrosa = spawnSync('python3', ['-c', 'import librosa'], { stdio: 'ignore' }).status === 0;
  const librosa = hasLibrosa ? run('python3', [path.join(__dirname, 'librosa_bench.py'), '200']) : null;
  if (!librosa) line('librosa not found: skipped (enable it with `pip install librosa`)');
  const workload = 'logMel+mfcc+rms+zcr+centroid, 16 kHz, nFft 512, hop 160, 64 mels, 13 MFCCs';
  line(`workload: ${workload}; audio-seconds per wall-second (higher is better)`);
  const vs = (a, b) => (b ? `${(a / b).toFixed(1)}x` : 'n/a');
  line(`1 s clips, 1 thread: gama-native ${fmt(gama.single1s)} | librosa ${librosa ? fmt(librosa.single1s) : 'n/a'} | Meyda ${fmt(meyda.single1s)} | vs librosa ${vs(gama.single1s, librosa?.single1s)} | vs Meyda ${vs(gama.single1s, meyda.single1s)} (goal >= 10k, 15x librosa, 100x Meyda)`);
  line(`60 s clip, 1 thread: gama-native ${fmt(gama.single60s)} | librosa ${librosa ? fmt(librosa.single60s) : 'n/a'} | vs librosa ${vs(gama.single60s, librosa?.single60s)} (goal >= 5x)`);
  line(`1 s clips, all ${cores} cores (extractFeaturesBatch / process pool / worker_threads): gama-native ${fmt(gama.batch1s)} | librosa ${librosa ? fmt(librosa.batch1s) : 'n/a'} | Meyda ${fmt(meyda.batch1s)} | batch/single ${(gama.batch1s / gama.single1s).toFixed(2)}x (goal >= 1.7x on 2 cores)`);
  return { gama, meyda, librosa };
}

module.exports = { run: run_ };
