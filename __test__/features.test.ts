import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

import { extractFeatures, extractFeaturesBatch, type ExtractOptions, type FeatureMatrix, type FeatureName } from '../index.js'

interface FixtureFeature { frames: number; bins: number; data: string }
interface FixtureCase { name: string; params: Record<string, unknown>; audio: string; features: Record<string, FixtureFeature> }
const fixtures: { librosa: string; cases: FixtureCase[] } = JSON.parse(readFileSync(join(__dirname, 'fixtures', 'librosa.json'), 'utf8'))

const decode = (b64: string) => {
  const bytes = Buffer.from(b64, 'base64')
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength))
}

const ALL: FeatureName[] = ['stft', 'power', 'mel', 'logMel', 'mfcc', 'rms', 'zcr', 'spectralCentroid', 'spectralBandwidth', 'spectralRolloff', 'spectralFlatness', 'chroma']

/** Largest |a - b| over the range of b. */
function relativeError(actual: Float32Array, expected: Float32Array) {
  let max = -Infinity
  let min = Infinity
  let err = 0
  for (let i = 0; i < expected.length; i++) {
    max = Math.max(max, expected[i])
    min = Math.min(min, expected[i])
    err = Math.max(err, Math.abs(actual[i] - expected[i]))
  }
  // Over the range, or the largest magnitude where that is larger (values
  // that barely vary, as the flatness of clicks does, are held to rounding
  // of their size).
  return { abs: err, rel: err / (Math.max(max - min, Math.abs(max), Math.abs(min)) || 1) }
}

// Tolerances: the for stft/power/mel (1e-4 of the range), logMel
// (1e-3 dB) and mfcc (1e-3); spectral statistics computed in f32 may differ
// by rounding; the rolloff by one FFT bin where cumulative sums tie.
const tolerance: Record<FeatureName, { rel?: number; abs?: number }> = {
  stft: { rel: 1e-4 },
  power: { rel: 1e-4 },
  mel: { rel: 1e-4 },
  logMel: { abs: 1e-3 },
  mfcc: { abs: 1e-3 },
  chroma: { rel: 1e-4 },
  rms: { rel: 1e-4 },
  zcr: { abs: 1e-6 },
  spectralCentroid: { rel: 1e-4 },
  spectralBandwidth: { rel: 1e-4 },
  spectralFlatness: { rel: 1e-4 },
  spectralRolloff: {},
}

/** Asserts that every feature of `c` matches librosa's within the tolerances. */
function assertMatchesLibrosa(c: FixtureCase) {
  const audio = decode(c.audio)
  const out = extractFeatures(audio, { ...(c.params as unknown as ExtractOptions), features: ALL })
  for (const name of ALL) {
    const place = `${c.name} ${name}`
    const want = c.features[name]
    const expected = decode(want.data)
    const got = out[name]
    assert.ok(got, `${place} missing`)
    const data = got instanceof Float32Array ? got : (got as FeatureMatrix).data
    if (!(got instanceof Float32Array)) {
      assert.equal((got as FeatureMatrix).frames, want.frames, `${place} frames`)
      assert.equal((got as FeatureMatrix).bins, want.bins, `${place} bins`)
    }
    assert.equal(data.length, expected.length, `${place} length`)
    if (name === 'spectralRolloff') {
      const binHz = (c.params.sampleRate as number) / (c.params.nFft as number)
      const off = data.filter((v, i) => Math.abs(v - expected[i]) > binHz * 1.01).length
      const near = data.filter((v, i) => Math.abs(v - expected[i]) > 1e-3).length
      assert.equal(off, 0, `${place}: never more than one bin off`)
      assert.ok(near <= Math.max(1, data.length * 0.02), `${place}: a bin off in ${near} of ${data.length} frames`)
      continue
    }
    const { abs, rel } = relativeError(data, expected)
    const tol = tolerance[name]
    if (tol.rel !== undefined) assert.ok(rel <= tol.rel, `${place}: relative error ${rel}`)
    if (tol.abs !== undefined) assert.ok(abs <= tol.abs, `${place}: absolute error ${abs}`)
  }
}

for (const c of fixtures.cases) {
  test(`matches librosa ${fixtures.librosa}: ${c.name}`, () => assertMatchesLibrosa(c))
}

// Random options and signals, computed by librosa where python3 has it
// (fixtures/librosa_random.py; GAMA_PARITY_SEED and GAMA_PARITY_CASES pick
// other draws): every option range the addon accepts, against librosa itself.
test('matches librosa on random options and signals', (t) => {
  const seed = process.env.GAMA_PARITY_SEED ?? '1'
  const count = process.env.GAMA_PARITY_CASES ?? '200'
  const run = spawnSync('python3', [join(__dirname, 'fixtures', 'librosa_random.py'), seed, count], {
    encoding: 'utf8',
    maxBuffer: 1 << 30,
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' },
  })
  if (run.error || run.status !== 0) {
    const why = run.error ? `python3 is not here (${run.error.message})` : run.stderr.trim().split('\n').pop()
    return t.skip(`librosa is not available: ${why}; pip install librosa to run it`)
  }
  const drawn: { cases: Array<FixtureCase & { librosaError?: string; librosaTailQuirk?: boolean }> } = JSON.parse(run.stdout)
  assert.equal(drawn.cases.length, Number(count))
  for (const c of drawn.cases) {
    assert.equal(c.librosaError, undefined, `${c.name}: librosa refused options the draw should not make`)
    assertMatchesLibrosa(c)
  }
})

test('only the asked features are returned, in shapes that follow the options', () => {
  const audio = decode(fixtures.cases[0].audio)
  const out = extractFeatures(audio, { sampleRate: 16000, nFft: 512, hopLength: 160, nMels: 64, nMfcc: 13, features: ['mfcc', 'rms'] })
  assert.deepEqual(Object.keys(out).sort(), ['mfcc', 'rms'])
  assert.equal(out.mfcc!.frames, 1 + Math.floor(16000 / 160))
  assert.equal(out.mfcc!.bins, 13)
  assert.equal(out.rms!.length, out.mfcc!.frames)
  const defaults = extractFeatures(audio, { sampleRate: 16000 })
  assert.deepEqual(Object.keys(defaults).sort(), ['logMel', 'mfcc'])
  assert.equal(defaults.logMel!.bins, 128)
  assert.equal(defaults.mfcc!.bins, 20)
  assert.equal(defaults.logMel!.frames, 1 + Math.floor(16000 / 512))
})

test('extractFeaturesBatch equals one-by-one extraction', async () => {
  const clips = fixtures.cases.filter((c) => c.params.sampleRate === 16000).map((c) => decode(c.audio))
  const options: ExtractOptions = { sampleRate: 16000, nFft: 512, hopLength: 160, nMels: 64, nMfcc: 13, features: ['logMel', 'mfcc', 'zcr'] }
  const batch = await extractFeaturesBatch(clips, options)
  assert.equal(batch.length, clips.length)
  clips.forEach((clip, i) => assert.deepEqual(batch[i], extractFeatures(clip, options)))
})

test('a batch of mixed lengths, a long clip split over the pool among them, equals its clips one by one', async () => {
  // 40 s next to short clips: the long one is split into pieces of frames.
  const swell = (len: number, seed: number) => {
    const a = new Float32Array(len)
    for (let i = 0; i < len; i++) a[i] = (0.05 + 0.9 * Math.abs(Math.sin(i / 16000 * 0.3 + seed))) * Math.sin(i * 0.39 + seed)
    return a
  }
  const clips = [swell(16000, 1), swell(640000, 2), swell(700, 3), swell(48000, 4)]
  const options: ExtractOptions = { sampleRate: 16000, nFft: 512, hopLength: 160, nMels: 64, nMfcc: 13, features: ['logMel', 'mfcc', 'rms', 'zcr', 'spectralCentroid'] }
  const batch = await extractFeaturesBatch(clips, options)
  clips.forEach((clip, i) => assert.deepEqual(batch[i], extractFeatures(clip, options), `clip ${i}`))
})

test('results of one extractFeaturesBatch call share buffers yet stay apart: writing one leaves the others, transferring one never detaches them', async () => {
  const options: ExtractOptions = { sampleRate: 16000, nFft: 512, hopLength: 160, nMels: 64, nMfcc: 13, features: ['logMel', 'mfcc', 'rms'] }
  const clips = Array.from({ length: 8 }, (_, k) => new Float32Array(16000 + 500 * k).map((_, i) => 0.4 * Math.sin(i * (0.02 + 0.003 * k))))
  const wanted = clips.map((c) => extractFeatures(c, options))
  const results = await extractFeaturesBatch(clips, options)
  results.forEach((got, i) => assert.deepEqual(got, wanted[i], `clip ${i}`))
  const buffers = new Set(results.map((r) => r.logMel!.data.buffer))
  assert.ok(buffers.size < results.length, `eight clips in ${buffers.size} buffers`)
  results[0].logMel!.data.fill(Number.NaN)
  results[0].rms!.fill(Number.NaN)
  const { port1, port2 } = new MessageChannel()
  const moved = results[2].mfcc!.data
  try {
    port1.postMessage(moved, [moved.buffer])
  } catch (err) {
    // Node 21 and later refuse to transfer an untransferable buffer.
    assert.equal((err as Error).name, 'DataCloneError')
  }
  port1.close()
  port2.close()
  results.slice(1).forEach((got, k) => assert.deepEqual(got, wanted[k + 1], `clip ${k + 1} after writing clip 0 and moving clip 2`))
})

test('results stay intact after their clip and its other results are collected', async () => {
  const options: ExtractOptions = { sampleRate: 16000, nFft: 512, hopLength: 160, nMels: 64, nMfcc: 13, features: ['logMel', 'rms'] }
  const clip = new Float32Array(32000).map((_, i) => Math.sin(i / 7))
  const expected = extractFeatures(clip, options)
  let batch: ReturnType<typeof extractFeatures>[] | undefined = await extractFeaturesBatch([clip, clip, clip], options)
  const kept = batch[1].logMel!.data
  const keptRms = batch[2].rms!
  batch = undefined
  // Collect the dropped results (their memory returns to Rust) and churn
  // the heap; the kept views must still read their own values.
  for (let i = 0; i < 3; i++) {
    await extractFeaturesBatch([clip, clip], options)
    globalThis.gc?.()
  }
  assert.deepEqual(kept, expected.logMel!.data)
  assert.deepEqual(keptRms, expected.rms)
})

test('extractFeaturesBatch reads a clip only after every element was read: a getter that detaches an earlier clip leaves it empty, never freed memory read', async () => {
  const options: ExtractOptions = { sampleRate: 16000, nFft: 512, hopLength: 160, features: ['rms'] }
  const first = new Float32Array(16000).fill(0.5)
  const second = new Float32Array(16000).fill(0.25)
  const clips: Float32Array[] = [first]
  Object.defineProperty(clips, 1, {
    enumerable: true,
    get() {
      // Detaches the first clip; its memory goes to the clone, which is
      // dropped and collected, and new arrays may reuse it.
      structuredClone(first.buffer, { transfer: [first.buffer] })
      ;(globalThis as { gc?: () => void }).gc?.()
      for (let i = 0; i < 50; i++) new Float32Array(16000).fill(9)
      return second
    },
  })
  await assert.rejects(extractFeaturesBatch(clips, options), (e: Error & { code?: string }) => e.code === 'E_EMPTY_AUDIO' && /clips\[0\]/.test(e.message))
  assert.equal(first.length, 0, 'the getter detached it')
  // Without the detach, the same call sees both clips.
  const [a, b] = await extractFeaturesBatch([new Float32Array(16000).fill(0.5), second], options)
  assert.ok(Math.abs(a.rms![5] - 0.5) < 1e-6 && Math.abs(b.rms![5] - 0.25) < 1e-6)
})

test('bad input gets clear errors that name the parameter', async () => {
  const audio = new Float32Array(1600).fill(0.1)
  const cases: Array<[Float32Array, Record<string, unknown>, RegExp, string]> = [
    [new Float32Array(0), { sampleRate: 16000 }, /empty/, 'E_EMPTY_AUDIO'],
    [Float32Array.from([0, NaN, 1]), { sampleRate: 16000 }, /NaN at sample 1/, 'E_NOT_FINITE'],
    [Float32Array.from([0, Infinity]), { sampleRate: 16000 }, /Infinity at sample 1/, 'E_NOT_FINITE'],
    [audio, { sampleRate: 0 }, /sampleRate/, 'ERR_OUT_OF_RANGE'],
    [audio, { sampleRate: -8000 }, /sampleRate/, 'ERR_OUT_OF_RANGE'],
    [audio, { sampleRate: NaN }, /sampleRate/, 'ERR_OUT_OF_RANGE'],
    [audio, { sampleRate: 16000, nFft: 0 }, /nFft/, 'ERR_OUT_OF_RANGE'],
    [audio, { sampleRate: 16000, nFft: -512 }, /nFft/, 'ERR_OUT_OF_RANGE'],
    [audio, { sampleRate: 16000, nFft: 512.5 }, /nFft/, 'ERR_OUT_OF_RANGE'],
    [audio, { sampleRate: 16000, hopLength: 0 }, /hopLength/, 'ERR_OUT_OF_RANGE'],
    [audio, { sampleRate: 16000, nFft: 512, winLength: 1024 }, /winLength/, 'ERR_OUT_OF_RANGE'],
    [audio, { sampleRate: 16000, fmax: 9000 }, /fmax .*Nyquist/, 'ERR_OUT_OF_RANGE'],
    [audio, { sampleRate: 16000, fmin: 5000, fmax: 4000 }, /fmax/, 'ERR_OUT_OF_RANGE'],
    [audio, { sampleRate: 16000, nMels: 0 }, /nMels/, 'ERR_OUT_OF_RANGE'],
    [audio, { sampleRate: 16000, nMels: 20, nMfcc: 40 }, /nMfcc/, 'ERR_OUT_OF_RANGE'],
    [audio, { sampleRate: 16000, features: ['mfcc', 'loudness'] }, /unknown feature 'loudness'/, 'ERR_INVALID_ARG_VALUE'],
    [audio, { sampleRate: 16000, features: [] }, /features/, 'ERR_OUT_OF_RANGE'],
    [audio, { sampleRate: 16000, window: 'kaiser' }, /window/, 'ERR_INVALID_ARG_VALUE'],
    [audio, { sampleRate: 16000, padMode: 'wrap' }, /padMode/, 'ERR_INVALID_ARG_VALUE'],
    [audio, { sampleRate: 16000, topDb: -1 }, /topDb/, 'ERR_OUT_OF_RANGE'],
    [new Float32Array(100), { sampleRate: 16000, nFft: 512, center: false }, /fewer than one frame/, 'E_TOO_SHORT'],
  ]
  for (const [input, options, message, code] of cases) {
    assert.throws(() => extractFeatures(input, options as unknown as ExtractOptions), (err: Error & { code?: string }) => {
      assert.match(err.message, message)
      assert.equal(err.code, code)
      return true
    }, `${JSON.stringify(options)} on ${input.length} samples`)
  }
  assert.throws(() => extractFeatures([0.1, 0.2] as unknown as Float32Array, { sampleRate: 16000 }))
  assert.throws(() => extractFeatures(audio, undefined as unknown as ExtractOptions))
  await assert.rejects(extractFeaturesBatch([audio, new Float32Array(0)], { sampleRate: 16000 }), /clips\[1\]: audio is empty/)
  assert.throws(() => extractFeaturesBatch([], { sampleRate: 16000 }), TypeError)
})
