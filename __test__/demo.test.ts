import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const demo = join(__dirname, '..', 'examples', 'demo.ts');

function run(...args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', demo, ...args], { encoding: 'utf8', timeout: 60000 });
}

function wav(seconds: number, rate = 16000): Buffer {
  const n = Math.round(seconds * rate);
  const b = Buffer.alloc(44 + n * 2);
  b.write('RIFF', 0);
  b.writeUInt32LE(36 + n * 2, 4);
  b.write('WAVEfmt ', 8);
  b.writeUInt32LE(16, 16);
  b.writeUInt16LE(1, 20);
  b.writeUInt16LE(1, 22);
  b.writeUInt32LE(rate, 24);
  b.writeUInt32LE(rate * 2, 28);
  b.writeUInt16LE(2, 32);
  b.writeUInt16LE(16, 34);
  b.write('data', 36);
  b.writeUInt32LE(n * 2, 40);
  for (let i = 0; i < n; i++) b.writeInt16LE(Math.round(8000 * Math.sin(i / 5)), 44 + i * 2);
  return b;
}

test('the demo reports a missing folder, an empty folder and a missing argument', () => {
  const missing = run('--input', join(tmpdir(), 'gama-no-such-folder'));
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /cannot read folder .*ENOENT/);
  const empty = mkdtempSync(join(tmpdir(), 'gama-empty-'));
  try {
    const r = run('--input', empty);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /no \.wav files .*empty/);
  } finally {
    rmSync(empty, { recursive: true });
  }
  assert.match(run('--input').stderr, /--input needs a folder/);
});

test('the demo skips corrupt and non-WAV files and processes the rest', () => {
  const dir = mkdtempSync(join(tmpdir(), 'gama-mixed-'));
  try {
    writeFileSync(join(dir, 'a.wav'), wav(1));
    writeFileSync(join(dir, 'b.WAV'), wav(0.5, 22050));
    writeFileSync(join(dir, 'broken.wav'), wav(1).subarray(0, 20));
    writeFileSync(join(dir, 'readme.md'), '# not audio');
    const r = run('--input', dir);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /clips processed\s+2 of 3 WAV files/);
    assert.match(r.stdout, /broken\.wav: E_BAD_WAV/);
    assert.match(r.stdout, /readme\.md: not a \.wav file/);
    assert.match(r.stdout, /cache hit rate 100\.0%/);
    assert.match(r.stdout, /where the time went/);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('each seed example runs and prints what it did', () => {
  const expected: Record<string, RegExp> = {
    'feature-memory-system.ts': /patterns stored off the V8 heap[\s\S]*second search served from the results cache: true/,
    'task-router.ts': /routed:/,
    'model-orchestrator.ts': /\S/,
    'live-transcription-frontend.ts': /50 utterances streamed at once[\s\S]*utterance-49\.wav +3\.00 s +301 [\s\S]*50 finalized, 0 idle-closed/,
  };
  for (const [file, output] of Object.entries(expected)) {
    const run = spawnSync(process.execPath, ['--import', 'tsx', join(__dirname, '..', 'examples', file)], { encoding: 'utf8', timeout: 120000 });
    assert.equal(run.status, 0, `${file}: ${run.stderr}`);
    assert.match(run.stdout, output, file);
  }
});
