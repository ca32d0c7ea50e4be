// Type-level checks, enforced by `tsc --noEmit --strict` in `npm test`
// (the runtime part only confirms the values match the declared shapes).
import { test } from 'node:test'
import assert from 'node:assert/strict'

import { AudioFeatureCache, BatchProcessor, ClipSummary, ExtractedFeatures, LevelSummary } from '../index.js'

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false
function expectType<T extends true>(): T | void {}

test('addItem and addItems resolve to the operation\'s result type; reads to what was asked for', async () => {
  const bp = new BatchProcessor({ featureOptions: { sampleRate: 16000, nFft: 512 } })
  const clip = new Float32Array(1600).fill(0.25)
  const analysis = bp.addItem('ANALYZE', clip)
  const level = bp.addItem('MEASURE', clip)
  const features = bp.addItems('EXTRACT_FEATURES', [clip])
  expectType<Equal<typeof analysis, Promise<ClipSummary>>>()
  expectType<Equal<typeof level, Promise<LevelSummary>>>()
  expectType<Equal<typeof features, Promise<ExtractedFeatures[]>>>()
  bp.registerProcessor<string>('TRANSCRIBE', (items) => items.map((i) => `text of ${String(i.id)}`))
  const text = bp.addItem<string>('TRANSCRIBE', clip)
  const custom = bp.addItem('TRANSCRIBE', clip)
  expectType<Equal<typeof text, Promise<string>>>()
  expectType<Equal<typeof custom, Promise<unknown>>>()
  assert.equal((await analysis).duration, 0.1)
  assert.equal((await level).peak, 0.25)
  assert.ok((await features)[0].mfcc, 'the default features are logMel and mfcc')
  assert.match(await text, /^text of /)
  await custom
  await bp.close()

  const cache = new AudioFeatureCache()
  cache.set('v', Float32Array.of(1))
  const read = cache.get<Float32Array>('v')
  expectType<Equal<typeof read, Float32Array | undefined>>()
  const computed = cache.getOrCompute('c', () => ({ score: 1 }))
  expectType<Equal<typeof computed, Promise<{ score: number }>>>()
  const many = cache.getMany<Float32Array>(['v'])
  expectType<Equal<typeof many, Array<Float32Array | undefined>>>()
  assert.deepEqual(await computed, { score: 1 })
  assert.ok(read instanceof Float32Array && many[0] instanceof Float32Array)
})

test('extractFeaturesBatch resolves to an array of results that says where it ran', async () => {
  const { extractFeaturesBatch } = await import('../index.js')
  const results = await extractFeaturesBatch([new Float32Array(1600)], { sampleRate: 16000, nFft: 512, device: 'auto' })
  expectType<Equal<typeof results.device, 'cpu' | 'cuda'>>()
  const first: ExtractedFeatures = results[0]
  assert.ok(first.logMel)
  assert.equal(results.device, 'cpu', 'a batch this small stays on the CPU')
  // @ts-expect-error: the device is one of three names
  assert.throws(() => extractFeaturesBatch([new Float32Array(1600)], { sampleRate: 16000, device: 'gpu' }), RangeError)
})
