// Every public entry point answers bad input with a TypeError or RangeError
// that carries a Node-style code, names the parameter, suggests the option
// meant, and describes the value briefly instead of quoting it.
import { test } from 'node:test'
import assert from 'node:assert/strict'

import * as gama from '../index.js'
import {
  AudioFeatureCache,
  BatchProcessor,
  GAMAMemoryManager,
  PerformanceProfiler,
  extractFeatures,
  extractFeaturesBatch,
  loadAudioSync,
} from '../index.js'

type Expect = { name: 'TypeError' | 'RangeError'; code: string; message: RegExp }
const loose = (f: () => unknown) => f as () => unknown
const audio = new Float32Array(1600).fill(0.1)

function check(cases: Array<[string, () => unknown, Expect]>) {
  for (const [label, f, expected] of cases) {
    assert.throws(f, (err: Error & { code?: string }) => {
      assert.equal(err.name, expected.name, `${label}: ${err.message}`)
      assert.equal(err.code, expected.code, `${label}: ${err.message}`)
      assert.match(err.message, expected.message, label)
      assert.ok(err.message.length < 300, `${label}: a short message (${err.message.length} chars)`)
      return true
    }, label)
  }
}

const unknown = (key: string, hint: string): Expect => ({ name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE', message: new RegExp(`unknown option '${key}'.*${hint}`) })

test('unknown option keys are TypeErrors naming the key and the nearest valid one', () => {
  const o = (x: object) => x as never
  check([
    ['cache maxMem', () => new AudioFeatureCache(o({ maxMem: '1GB' })), unknown('maxMem', "did you mean 'maxMemory'")],
    ['cache maxSize', () => new AudioFeatureCache(o({ maxSize: 5 })), unknown('maxSize', 'known options: maxEntries, maxMemory')],
    ['batch maxBatch', () => new BatchProcessor(o({ maxBatch: 5 })), unknown('maxBatch', "did you mean 'maxBatchSize'")],
    ['profiler alertThreshold', () => new PerformanceProfiler(o({ alertThreshold: {} })), unknown('alertThreshold', "did you mean 'alertThresholds'")],
    ['nested thresholds', () => new PerformanceProfiler({ alertThresholds: o({ p95: 5 }) }), unknown('p95', "did you mean 'p95Ms'")],
    ['extract nfft', () => extractFeatures(audio, o({ sampleRate: 16000, nfft: 512 })), unknown('nfft', "did you mean 'nFft'")],
    ['extract n_mels', () => extractFeatures(audio, o({ sampleRate: 16000, n_mels: 40 })), unknown('n_mels', "did you mean 'nMels'")],
    ['extract sr', () => extractFeatures(audio, o({ sr: 16000 })), unknown('sr', 'known options: sampleRate')],
    ['manager', () => new GAMAMemoryManager(o({ maxMemroy: '1GB' })), unknown('maxMemroy', "did you mean 'maxMemory'")],
    ['allocate', () => new GAMAMemoryManager({ device: 'cpu' }).allocate(64, o({ devcie: 'host' })), unknown('devcie', "did you mean 'device'")],
    ['set', () => new AudioFeatureCache().set('k', 1, o({ tag: ['x'] })), unknown('tag', "did you mean 'tags'")],
    ['warm', () => new AudioFeatureCache().warm(['a'], () => 1, o({ concurency: 2 })), unknown('concurency', "did you mean 'concurrency'")],
    ['addItem', () => new BatchProcessor().addItem('MEASURE', audio, o({ priorty: 1 })), unknown('priorty', "did you mean 'priority'")],
    ['item data', () => new BatchProcessor().addItem('EXTRACT_FEATURES', { audio, sampleRat: 8000 }), unknown('sampleRat', "did you mean 'sampleRate'")],
    ['featureOptions', () => new BatchProcessor({ featureOptions: o({ sampleRate: 16000, hop: 5 }) }), unknown('hop', '')],
    ['summary', () => new PerformanceProfiler().getPerformanceSummary(o({ lastMinute: 5 })), unknown('lastMinute', "did you mean 'lastMinutes'")],
    ['close', () => new BatchProcessor().close(o({ forced: true })), unknown('forced', "did you mean 'force'")],
  ])
})

test('values of the wrong kind name the parameter and what was expected', async () => {
  const cache = new AudioFeatureCache()
  const manager = new GAMAMemoryManager({ device: 'cpu', maxMemory: '64MiB', reservedMemory: 0 })
  const block = manager.allocate(64)
  const type = (message: RegExp): Expect => ({ name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message })
  const range = (message: RegExp): Expect => ({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE', message })
  const value = (message: RegExp): Expect => ({ name: 'RangeError', code: 'ERR_INVALID_ARG_VALUE', message })
  check([
    ['device gpu', () => new GAMAMemoryManager({ device: 'gpu' as 'cuda' }), value(/options\.device must be 'auto' \| 'cpu' \| 'cuda'; got 'gpu'.*'cuda'/)],
    ['threshold fraction', () => new GAMAMemoryManager({ optimizationThreshold: 0.7 }), range(/optimizationThreshold must be a percentage from 1 to 100; got 0\.7.*did you mean 70/)],
    ['policy case', () => new AudioFeatureCache({ policy: 'LRU' as 'lru' }), value(/options\.policy must be .*got 'LRU'; did you mean 'lru'/)],
    ['numeric key', () => cache.set(42 as unknown as string, 1), type(/^key must be a string/)],
    ['has and get agree', () => cache.has(5 as unknown as string), type(/^key must be a string/)],
    ['get', () => cache.get(5 as unknown as string), type(/^key must be a string/)],
    ['huge key value', () => cache.has(new Float32Array(1e6) as unknown as string), type(/^key must be a string/)],
    ['no options', loose(() => (extractFeatures as (a: Float32Array) => unknown)(audio)), type(/options\.sampleRate is required/)],
    ['plain array audio', () => extractFeatures([0, 1, 0] as unknown as Float32Array, { sampleRate: 16000 }), type(/^audio must be a Float32Array; got an array of 3 items/)],
    ['tags string', () => cache.set('k', 1, { tags: 'x' as unknown as string[] }), type(/^options\.tags must be an array of strings; got a string \('x'\)/)],
    ['tags hole', () => cache.set('k', 1, { tags: new Array(3) }), type(/^options\.tags\[0\] must be a string; got a hole/)],
    ['number options', () => new AudioFeatureCache(5 as never), type(/^options must be an object; got a number \(5\)/)],
    ['string options', () => new BatchProcessor('x' as never), type(/^options must be an object; got a string/)],
    ['array options', () => new GAMAMemoryManager([] as never), type(/^options must be an object; got an array/)],
    ['bytesPerItem 0', () => manager.recommendBatchSize('op', 0), range(/^bytesPerItem must be greater than 0/)],
    ['gpuChunkSize 0', () => new GAMAMemoryManager({ gpuChunkSize: 0 }), range(/gpuChunkSize must be greater than 0/)],
    ['checkIntervalMs 0', () => new PerformanceProfiler({ checkIntervalMs: 0 }), range(/checkIntervalMs must be at least 10 ms/)],
    ['huge ms', () => new BatchProcessor({ maxWaitMs: 1e300 }), range(/maxWaitMs must be a number of milliseconds from 0 to 2147483647; got 1e\+300/)],
    ['huge timeout', () => new BatchProcessor({ batchTimeoutMs: 1e22 }), range(/batchTimeoutMs/)],
    ['huge idle trim', () => new GAMAMemoryManager({ idleTrimMs: 1e300 }), range(/idleTrimMs/)],
    ['huge ttl', () => new AudioFeatureCache({ ttl: 1e300 }), range(/options\.ttl/)],
    ['huge set ttl', () => cache.set('k', 1, { ttl: 1e22 }), range(/options\.ttl/)],
    ['huge p95', () => new PerformanceProfiler({ alertThresholds: { p95Ms: 1e300 } }), range(/options\.alertThresholds\.p95Ms/)],
    ['copyFrom huge offset', () => block.copyFrom(new Uint8Array(4), 1e21), range(/^offset must be a whole number of bytes from 0 to 64; got 1e\+21/)],
    ['copyTo max offset', () => block.copyTo(new Uint8Array(4), Number.MAX_VALUE), range(/^offset/)],
    ['copyFrom end', () => block.copyFrom(new Uint8Array(4), 62), range(/do not fit/)],
    ['path type', () => loadAudioSync(5 as unknown as string), type(/^path must be a string; got a number \(5\)/)],
    ['profile names', () => new PerformanceProfiler().profileOperation(1 as unknown as string, 'x', () => 1), type(/^component must be a string/)],
    ['batch clips', () => extractFeaturesBatch('x' as unknown as Float32Array[], { sampleRate: 16000 }), type(/^clips must be an array of Float32Array/)],
    ['sparse clips', () => extractFeaturesBatch(new Array(2 ** 32 - 1), { sampleRate: 16000 }), type(/^clips\[0\] must be a Float32Array; got a hole/)],
    ['addItems element', () => new BatchProcessor().addItems('ANALYZE', [audio, 'x']), type(/^data\[1\] of ANALYZE must be a Float32Array/)],
    ['featureOptions fmax', () => new BatchProcessor({ featureOptions: { sampleRate: 8000, fmax: 6000 } }), range(/options\.featureOptions\.fmax/)],
    ['no new', () => (AudioFeatureCache as unknown as () => unknown)(), { name: 'TypeError', code: 'ERR_CONSTRUCT_CALL_REQUIRED', message: /without 'new'/ }],
  ])
  block.release()
})

test('null means the default for optional fields', () => {
  const cache = new AudioFeatureCache({ ttl: null, maxEntries: null, policy: null } as never)
  cache.set('k', 1, { ttl: null, tags: null } as never)
  assert.equal(cache.get('k'), 1)
  const base = extractFeatures(audio, { sampleRate: 16000, features: ['mfcc'] })
  const nulls = extractFeatures(audio, { sampleRate: 16000, nFft: null, hopLength: null, features: ['mfcc'] } as never)
  assert.deepEqual(nulls.mfcc!.data, base.mfcc!.data)
  const noFloor = extractFeatures(audio, { sampleRate: 16000, topDb: null, features: ['logMel'] })
  assert.ok(noFloor.logMel, 'topDb: null keeps its meaning (no floor)')
  assert.ok(new GAMAMemoryManager({ device: null, maxMemory: null } as never))
})

test('the exports hold no undefined names', () => {
  const exports = gama as Record<string, unknown>
  assert.deepEqual(Object.keys(exports).filter((k) => exports[k] === undefined), [])
  assert.ok(new gama.GAMAMemoryManager({ device: 'cpu' }) instanceof GAMAMemoryManager)
  class Tagged extends AudioFeatureCache {}
  assert.ok(new Tagged() instanceof AudioFeatureCache, 'the classes can be extended')
})
