import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

import { BatchProcessor, GAMAMemoryManager, extractFeatures, extractFeaturesBatch, type BatchExtractOptions, type ExtractOptions, type FeatureMatrix, type FeatureName } from '../index.js'

// `device` of extractFeaturesBatch. Tests that need a GPU say why they skip
// on a machine without one (CI, the build machine); scripts/gpu-check.sh
// runs them on one.

interface FixtureFeature { frames: number; bins: number; data: string }
interface FixtureCase { name: string; params: Record<string, unknown>; audio: string; features: Record<string, FixtureFeature> }
const fixtures: { cases: FixtureCase[] } = JSON.parse(readFileSync(join(__dirname, 'fixtures', 'librosa.json'), 'utf8'))
const decode = (b64: string) => {
  const bytes = Buffer.from(b64, 'base64')
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength))
}

const ALL: FeatureName[] = ['stft', 'power', 'mel', 'logMel', 'mfcc', 'rms', 'zcr', 'spectralCentroid', 'spectralBandwidth', 'spectralRolloff', 'spectralFlatness', 'chroma']
const speech: ExtractOptions = { sampleRate: 16000, nFft: 512, hopLength: 160, nMels: 64, nMfcc: 13, features: ['logMel', 'mfcc', 'rms', 'zcr', 'spectralCentroid'] }

const tone = (len: number, seed: number) => {
  const a = new Float32Array(len)
  for (let i = 0; i < len; i++) a[i] = 0.6 * Math.sin(i * (0.05 + 0.01 * seed)) * (0.2 + 0.8 * Math.abs(Math.sin(i / 4000 + seed))) + 0.01 * Math.sin(i * 2.1)
  return a
}

/** Why this machine cannot extract on a GPU, or null when it can. */
async function noGpu(): Promise<string | null> {
  try {
    await extractFeaturesBatch([tone(1600, 0)], { ...speech, device: 'cuda' })
    return null
  } catch (err) {
    const e = err as Error & { code?: string }
    if (e.code !== 'E_NO_GPU') throw err
    return e.message
  }
}
const why = noGpu()

/** Largest |a - b|, and that over the range of `b`. */
function errors(a: Float32Array, b: Float32Array) {
  let abs = 0
  let lo = Infinity
  let hi = -Infinity
  for (let i = 0; i < b.length; i++) {
    abs = Math.max(abs, Math.abs(a[i] - b[i]))
    lo = Math.min(lo, b[i])
    hi = Math.max(hi, b[i])
  }
  // Over the range, or the largest magnitude where that is larger (as in features.test.ts).
  return { abs, rel: abs / (Math.max(hi - lo, Math.abs(hi), Math.abs(lo)) || 1) }
}

/** Asserts `got` equals `want` within librosa's tolerances (rolloff: one bin). */
function assertClose(got: Float32Array, want: Float32Array, feature: FeatureName, binHz: number, place: string) {
  assert.equal(got.length, want.length, `${place}: length`)
  const { abs, rel } = errors(got, want)
  if (feature === 'logMel' || feature === 'mfcc') assert.ok(abs <= 1e-3, `${place}: off by ${abs}`)
  else if (feature === 'zcr') assert.ok(abs <= 1e-6, `${place}: off by ${abs}`)
  else if (feature === 'spectralRolloff') assert.ok(abs <= binHz * 1.01, `${place}: off by ${abs} Hz`)
  else assert.ok(rel <= 1e-4, `${place}: off by ${rel} of the range`)
}

const data = (v: FeatureMatrix | Float32Array) => (v instanceof Float32Array ? v : v.data)

test('a batch says where it ran, in properties that keys, loops and JSON skip', async () => {
  const clips = [tone(16000, 1), tone(8000, 2)]
  const results = await extractFeaturesBatch(clips, speech)
  assert.equal(results.device, 'cpu')
  assert.equal(results.gpuTime, undefined)
  assert.deepEqual(Object.keys(results), ['0', '1'])
  assert.equal(JSON.stringify(results), JSON.stringify([...results]))
  const explicit = await extractFeaturesBatch(clips, { ...speech, device: 'cpu' })
  assert.equal(explicit.device, 'cpu')
  assert.deepEqual([...explicit], [...results])
})

test("'auto' keeps a small batch on the CPU and gives the CPU's results", async () => {
  const clips = [tone(16000, 3), tone(3000, 4)]
  const results = await extractFeaturesBatch(clips, { ...speech, device: 'auto' })
  assert.equal(results.device, 'cpu', 'below 2,048 frames the CPU is faster')
  clips.forEach((clip, i) => assert.deepEqual(results[i], extractFeatures(clip, speech)))
})

test("'auto' on a batch large enough runs on the GPU when there is one, else on the CPU, with equal results", async () => {
  // 24 one-second clips: 2,424 frames.
  const clips = Array.from({ length: 24 }, (_, i) => tone(16000, i))
  const options: BatchExtractOptions = { ...speech, features: ALL, device: 'auto' }
  const results = await extractFeaturesBatch(clips, options)
  const reason = await why
  assert.equal(results.device, reason === null ? 'cuda' : 'cpu')
  clips.forEach((clip, i) => {
    const want = extractFeatures(clip, { ...speech, features: ALL })
    for (const name of ALL) assertClose(data(results[i][name]!), data(want[name]!), name, 16000 / 512, `clip ${i} ${name}`)
  })
})

test("'cuda' without a GPU rejects with E_NO_GPU naming what is missing", async (t) => {
  if ((await why) === null) return t.skip('a GPU is here')
  await assert.rejects(extractFeaturesBatch([tone(16000, 0)], { ...speech, device: 'cuda' }), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'E_NO_GPU')
    assert.match(err.message, /^no GPU to extract on: .*(\.so|device)/)
    return true
  })
})

test("'cuda' matches librosa on every fixture and the CPU on clips of mixed lengths in one batch", async (t) => {
  const reason = await why
  if (reason !== null) return t.skip(`no GPU: ${reason}`)
  for (const c of fixtures.cases) {
    const options = { ...(c.params as unknown as ExtractOptions), features: ALL }
    const audio = decode(c.audio)
    // The fixture's clip twice, a shorter one (still a whole frame) between.
    const shorter = audio.subarray(0, Math.min(audio.length, Math.max(4096, Math.floor(audio.length / 3))))
    const results = await extractFeaturesBatch([audio, shorter, audio], { ...options, device: 'cuda' })
    assert.equal(results.device, 'cuda')
    assert.ok(results.gpuTime && results.gpuTime.computeMs > 0, 'the device time is given')
    const binHz = (options.sampleRate as number) / ((options.nFft as number | undefined) ?? 2048)
    for (const name of ALL) {
      const expected = decode(c.features[name].data)
      assertClose(data(results[2][name]!), expected, name, binHz, `${c.name} ${name}`)
    }
  }
  const clips = [tone(16000, 1), tone(300, 2), tone(160000, 3), tone(512, 4), tone(48123, 5)]
  const results = await extractFeaturesBatch(clips, { ...speech, features: ALL, device: 'cuda' })
  clips.forEach((clip, i) => {
    const want = extractFeatures(clip, { ...speech, features: ALL })
    for (const name of ALL) assertClose(data(results[i][name]!), data(want[name]!), name, 16000 / 512, `clip ${i} ${name}`)
  })
})

test("a bad clip in a 'cuda' batch rejects naming it, as on the CPU", async (t) => {
  const reason = await why
  if (reason !== null) return t.skip(`no GPU: ${reason}`)
  await assert.rejects(extractFeaturesBatch([tone(1600, 0), new Float32Array(0)], { ...speech, device: 'cuda' }), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'E_EMPTY_AUDIO')
    assert.match(err.message, /^clips\[1\]: audio is empty/)
    return true
  })
})

test('bad device values are refused, naming options.device', () => {
  const clip = tone(1600, 0)
  const cases: Array<[unknown, RegExp, string, ErrorConstructor]> = [
    [{ ...speech, device: 'gpu' }, /options\.device.*'cpu'.*'cuda'.*'auto'/, 'ERR_INVALID_ARG_VALUE', RangeError],
    [{ ...speech, device: 1 }, /options\.device/, 'ERR_INVALID_ARG_TYPE', TypeError],
    [{ ...speech, devise: 'cuda' }, /devise.*did you mean 'device'/, 'ERR_INVALID_ARG_VALUE', TypeError],
    [{ ...speech, nFft: 16384, device: 'cuda' }, /nFft 16384 is above 8192/, 'E_GPU_UNSUPPORTED', RangeError],
  ]
  for (const [options, message, code, kind] of cases) {
    assert.throws(() => extractFeaturesBatch([clip], options as BatchExtractOptions), (err: Error & { code?: string }) => {
      assert.match(err.message, message)
      assert.equal(err.code, code)
      assert.ok(err instanceof kind, `${err.name}: ${err.message}`)
      return true
    }, JSON.stringify(options))
  }
  assert.throws(() => extractFeaturesBatch([clip], { ...speech, memoryManager: {} as GAMAMemoryManager }), (err: Error & { code?: string }) => {
    assert.ok(err instanceof TypeError)
    assert.match(err.message, /options\.memoryManager must be a GAMAMemoryManager/)
    return true
  })
  // extractFeatures runs on the calling thread, on the CPU: it takes no device.
  assert.throws(() => extractFeatures(clip, { ...speech, device: 'cpu' } as ExtractOptions), /device/)
})

test("BatchProcessor featureDevice: 'cuda' needs a memory manager with a GPU; bad values are refused", async () => {
  assert.throws(() => new BatchProcessor({ featureDevice: 'cuda' }), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'E_NO_GPU')
    assert.match(err.message, /featureDevice 'cuda' needs a memoryManager with a GPU/)
    return true
  })
  const cpu = new GAMAMemoryManager({ device: 'cpu' })
  assert.throws(() => new BatchProcessor({ featureDevice: 'cuda', memoryManager: cpu }), /E_NO_GPU|needs a memoryManager/)
  assert.throws(() => new BatchProcessor({ featureDevice: 'gpu' as 'cuda' }), (err: Error & { code?: string }) => {
    assert.ok(err instanceof RangeError)
    assert.match(err.message, /options\.featureDevice/)
    return true
  })
  // 'auto' with a manager on the CPU runs on the workers, and says so.
  const bp = new BatchProcessor({ featureDevice: 'auto', memoryManager: cpu, threads: 2, featureOptions: speech })
  const clips = Array.from({ length: 4 }, (_, i) => tone(16000, i))
  const results = await bp.addItems('EXTRACT_FEATURES', clips)
  clips.forEach((clip, i) => assert.deepEqual(results[i], extractFeatures(clip, speech)))
  const stats = bp.getStats()
  assert.equal(stats.gpuBatches, 0)
  assert.equal(stats.gpuFallbacks, 0)
  // A JS processor's batch is told it got host memory.
  let device = ''
  bp.registerProcessor('EMBED', (items, strategy) => {
    device = strategy.device
    return items.map(() => 0)
  })
  await bp.addItem('EMBED', tone(1600, 0))
  assert.equal(device, 'host')
  await bp.close()
})

test("BatchProcessor featureDevice 'cuda' runs EXTRACT_FEATURES batches on the GPU with the CPU's results", async (t) => {
  const reason = await why
  if (reason !== null) return t.skip(`no GPU: ${reason}`)
  const mm = new GAMAMemoryManager({ device: 'cuda' })
  const bp = new BatchProcessor({ featureDevice: 'cuda', memoryManager: mm, maxBatchSize: 32, featureOptions: speech })
  const clips = Array.from({ length: 64 }, (_, i) => tone(8000 + 250 * i, i))
  const results = await bp.addItems('EXTRACT_FEATURES', clips)
  clips.forEach((clip, i) => {
    const want = extractFeatures(clip, speech)
    for (const name of ['logMel', 'mfcc', 'rms', 'zcr', 'spectralCentroid'] as FeatureName[]) {
      assertClose(data(results[i][name]!), data(want[name]!), name, 16000 / 512, `clip ${i} ${name}`)
    }
  })
  const stats = bp.getStats()
  assert.ok(stats.gpuBatches > 0, 'batches ran on the GPU')
  assert.ok(stats.gpuTimeMs > 0)
  // A JS processor's batch gets GPU memory from the GPU budget, and is told so.
  let strategy = { device: '', memoryBudget: 0 }
  bp.registerProcessor('EMBED', (items, s) => {
    strategy = s
    return items.map(() => 0)
  })
  await bp.addItem('EMBED', tone(16000, 0))
  assert.equal(strategy.device, 'gpu')
  assert.ok(strategy.memoryBudget > 0)
  await bp.close()
})

test("a GPU batch draws on the memoryManager given: none on the GPU means E_NO_GPU, too small a budget E_BUDGET ('auto' then runs on the CPU)", async () => {
  const clips = Array.from({ length: 24 }, (_, i) => tone(16000, i))
  const cpu = new GAMAMemoryManager({ device: 'cpu' })
  await assert.rejects(extractFeaturesBatch(clips, { ...speech, device: 'cuda', memoryManager: cpu }), { code: 'E_NO_GPU' })
  const onCpu = await extractFeaturesBatch(clips, { ...speech, device: 'auto', memoryManager: cpu })
  assert.equal(onCpu.device, 'cpu')
  if ((await why) !== null) return
  const small = new GAMAMemoryManager({ device: 'cuda', gpuMaxMemory: '1MB' })
  await assert.rejects(extractFeaturesBatch(clips, { ...speech, device: 'cuda', memoryManager: small }), { code: 'E_BUDGET' })
  const fellBack = await extractFeaturesBatch(clips, { ...speech, device: 'auto', memoryManager: small })
  assert.equal(fellBack.device, 'cpu')
  clips.forEach((clip, i) => assert.deepEqual(fellBack[i], extractFeatures(clip, speech)))
  const roomy = new GAMAMemoryManager({ device: 'cuda' })
  const onGpu = await extractFeaturesBatch(clips, { ...speech, device: 'cuda', memoryManager: roomy })
  assert.equal(onGpu.device, 'cuda')
  assert.equal(roomy.getMemoryUsage().gpu?.budget.used ?? -1, 0, 'the batch gave its device memory back')
})

test("concurrent 'cuda' batches take turns on the GPU and each gets its own clips' results", async (t) => {
  const reason = await why
  if (reason !== null) return t.skip(`no GPU: ${reason}`)
  const batches = Array.from({ length: 8 }, (_, b) => Array.from({ length: 3 + b }, (_, i) => tone(4000 + 1000 * i + 17 * b, b * 10 + i)))
  const all = await Promise.all(batches.map((clips) => extractFeaturesBatch(clips, { ...speech, device: 'cuda' })))
  all.forEach((results, b) => {
    assert.equal(results.device, 'cuda')
    assert.equal(results.length, batches[b].length)
    batches[b].forEach((clip, i) => {
      const want = extractFeatures(clip, speech)
      for (const name of ['logMel', 'mfcc', 'rms', 'zcr', 'spectralCentroid'] as FeatureName[]) {
        assertClose(data(results[i][name]!), data(want[name]!), name, 16000 / 512, `batch ${b} clip ${i} ${name}`)
      }
    })
  })
})
