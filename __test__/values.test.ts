// What the cache gives back is what was stored: structured values at any
// depth, keys of any length, and reads that own their memory.
import { test } from 'node:test'
import assert from 'node:assert/strict'

import { AudioFeatureCache, type CacheValue } from '../index.js'

test('structured values come back equal, at any depth', () => {
  const cache = new AudioFeatureCache()
  const value = {
    vector: Float32Array.of(1, 2, 3),
    meta: { when: new Date(1_700_000_000_000), tags: new Set(['a', 'b']), counts: new Map<unknown, unknown>([['x', 1n], [2, { y: [1] }]]) },
    raw: Uint8Array.of(1, 2, 3).buffer,
    view: new DataView(Uint8Array.of(9, 8, 7, 6).buffer),
    odd: [NaN, -0, Infinity, -Infinity, undefined, null, true],
    // eslint-disable-next-line no-sparse-arrays
    sparse: [1, , 3],
    big: -(2n ** 70n),
    ints: Int32Array.of(-1, 7),
    bytes: Buffer.from('hi'),
    text: 'é€😀',
    nested: [[Float64Array.of(0.5)], { deep: { deeper: Int16Array.of(-2) } }],
  }
  cache.set('v', value)
  const back = cache.get('v') as typeof value
  assert.deepStrictEqual(back, value)
  assert.notEqual(back.vector, value.vector, 'a copy')
  assert.ok(back.vector instanceof Float32Array && back.meta.when instanceof Date && back.meta.counts instanceof Map)
  assert.ok(Buffer.isBuffer(back.bytes))
  assert.ok(Object.is(back.odd[1], -0) && Number.isNaN(back.odd[0]))
  assert.equal(back.sparse.length, 3)
  assert.ok(!(1 in back.sparse), 'a hole stays a hole')
  assert.equal(new DataView(back.view.buffer).getUint8(1), 8)
  // Top-level values of every kind.
  for (const top of [Int32Array.of(5), 'text', 42, NaN, null, false, 10n, new Map([[1, 2]]), [1, 'x']]) {
    cache.set('top', top)
    assert.deepStrictEqual(cache.get('top'), top)
  }
  // The seed's FeatureMemorySystem stores { vector: Float32Array, ... }.
  cache.set('memory', { vector: Float32Array.of(0.25, 0.5), timestamp: 1, accessCount: 0 })
  assert.ok((cache.get('memory') as { vector: Float32Array }).vector instanceof Float32Array)
  const huge = new Array(2 ** 32 - 1)
  huge[5] = 'five'
  cache.set('sparse', huge)
  const hugeBack = cache.get('sparse') as string[]
  assert.equal(hugeBack.length, 2 ** 32 - 1)
  assert.equal(hugeBack[5], 'five')
})

test('values that cannot be stored faithfully are refused with the path of the offending part', () => {
  const cache = new AudioFeatureCache()
  class Point {
    constructor(public x = 1) {}
  }
  const circular: Record<string, unknown> = { a: { b: {} } }
  ;(circular.a as Record<string, Record<string, unknown>>).b.back = circular
  const cases: Array<[unknown, RegExp]> = [
    [{ meta: { handler: () => 1 } }, /^value\.meta\.handler: a function is not storable/],
    [{ p: new Point() }, /^value\.p: an instance of Point is not storable/],
    [{ s: Symbol('x') }, /^value\.s: a symbol is not storable/],
    [{ r: /x/ }, /^value\.r: an instance of RegExp is not storable/],
    [[1, { w: new WeakMap() }], /^value\[1\]\.w: an instance of WeakMap/],
    [{ 'a key': { p: Promise.resolve() } }, /^value\["a key"\]\.p: an instance of Promise/],
    [{ k: 'x\uD800' }, /^value\.k: a string with a lone surrogate \(at index 1\)/],
    [circular, /^value\.a\.b\.back: a circular reference is not storable/],
    [new Map([['k', () => 0]]), /^value\.<entry 0>: a function/],
    [undefined, /must not be undefined/],
  ]
  for (const [value, message] of cases) {
    assert.throws(() => cache.set('bad', value as never), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message }, String(message))
  }
  assert.throws(() => cache.setMany([['ok', 1], ['bad', { f: () => 1 }]]), { name: 'TypeError', message: /^entries\[1\]\[1\]\.f: a function/ })
  assert.equal(cache.size, 0, 'nothing was stored')
})

test('keys survive whole: long keys ending in multi-byte characters, and lone surrogates are refused', () => {
  const cache = new AudioFeatureCache()
  const endings = ['é', '€', '😀', 'x']
  const keys: string[] = []
  for (let length = 248; length <= 260; length++) {
    for (const end of endings) keys.push('a'.repeat(length) + end)
    keys.push('a'.repeat(length))
  }
  keys.forEach((key, i) => cache.set(key, i))
  keys.forEach((key, i) => {
    assert.equal(cache.get(key), i, `key of ${Buffer.byteLength(key)} bytes`)
    assert.equal(cache.has(key), true)
  })
  assert.equal(cache.size, keys.length)
  assert.deepEqual(cache.getMany(keys.slice(0, 5)), [0, 1, 2, 3, 4])
  for (const lone of ['\uD800', '\uDC00', 'a\uD800b']) {
    assert.throws(() => cache.set(lone, 1), { name: 'TypeError', message: /lone surrogate/ })
    assert.throws(() => cache.get(lone), { name: 'TypeError', message: /lone surrogate/ })
  }
  cache.set('\uFFFD', 'replacement')
  assert.equal(cache.get('\uFFFD'), 'replacement', 'a real U+FFFD is a key like any other')
})

test('each read owns its memory: transferring one never detaches another, and .buffer holds only its value', () => {
  const cache = new AudioFeatureCache()
  cache.set('a', Float32Array.of(1, 2, 3, 4))
  cache.set('b', Float32Array.of(5, 6, 7, 8))
  cache.set('bytes', Buffer.from('secret'))
  const b = cache.get('b') as Float32Array
  const a = cache.get('a') as Float32Array
  structuredClone(a, { transfer: [a.buffer] })
  assert.equal(a.length, 0, 'the transferred read is detached')
  assert.deepEqual(Array.from(b), [5, 6, 7, 8], 'an earlier read is untouched')
  const again = cache.get('a') as Float32Array
  assert.deepEqual(Array.from(again), [1, 2, 3, 4])
  assert.equal(again.buffer.byteLength, 16, 'the buffer holds this value only')
  assert.equal(Buffer.from(again.buffer).length, 16)
  const bytes = cache.get('bytes') as Buffer
  assert.equal(bytes.buffer.byteLength, 6)
  assert.equal(bytes.toString(), 'secret')
  const frozen = Object.freeze(new AudioFeatureCache())
  frozen.set('k', 1)
  assert.equal(frozen.get('k'), 1, 'a frozen cache still reads')
})

test('getMany gives every kind of value back in order, each owning exactly its own memory', () => {
  const cache = new AudioFeatureCache()
  const stored: Array<[string, CacheValue]> = [
    ['f32', Float32Array.of(1.5, -2, 3)],
    ['f64', Float64Array.of(0.25)],
    ['i16', Int16Array.of(-7, 8, 9)],
    ['u8', Uint8Array.of(1, 2, 3, 4, 5)],
    ['buf', Buffer.from('abc')],
    ['obj', { a: [1, 'x'] }],
    ['nul\0key', Float32Array.of(42)],
    ['empty', new Float32Array(0)],
  ]
  for (const [key, value] of stored) cache.set(key, value)
  const keys = ['missing', ...stored.map(([key]) => key), 'also missing']
  const back = cache.getMany(keys)
  assert.equal(back.length, keys.length)
  assert.equal(back[0], undefined)
  assert.equal(back[back.length - 1], undefined)
  stored.forEach(([, value], i) => {
    const got = back[i + 1]
    assert.deepStrictEqual(got, value)
    if (ArrayBuffer.isView(got)) assert.equal(got.buffer.byteLength, got.byteLength, 'no bytes beyond its own')
  })
  const f32 = back[1] as Float32Array
  structuredClone(f32, { transfer: [f32.buffer] })
  assert.deepEqual(Array.from(back[3] as Int16Array), [-7, 8, 9], 'transferring one leaves the others')
  assert.deepEqual(cache.getMany(['none', 'of', 'these']), [undefined, undefined, undefined])
  assert.deepEqual(cache.getMany([]), [])
})

test('a Uint8Array detached by JS that runs while set reads it is stored empty, never read from freed memory', () => {
  // The Buffer check runs Buffer[Symbol.hasInstance]; this one detaches the
  // array it is asked about, collects its memory and fills new arrays
  // (which may reuse it) with 9s.
  const trap = (target: Uint8Array) =>
    Object.defineProperty(Buffer, Symbol.hasInstance, {
      configurable: true,
      value(this: unknown, v: unknown) {
        if (v === target) {
          structuredClone(target.buffer, { transfer: [target.buffer] })
          ;(globalThis as { gc?: () => void }).gc?.()
          for (let i = 0; i < 50; i++) new Uint8Array(4096).fill(9)
        }
        return (Function.prototype as unknown as { [Symbol.hasInstance]: (v: unknown) => boolean })[Symbol.hasInstance].call(this, v)
      },
    })
  const cache = new AudioFeatureCache()
  try {
    const flat = new Uint8Array(4096).fill(7)
    trap(flat)
    cache.set('flat', flat)
    const nested = new Uint8Array(4096).fill(7)
    trap(nested)
    cache.set('nested', { nested })
  } finally {
    delete (Buffer as unknown as { [Symbol.hasInstance]?: unknown })[Symbol.hasInstance]
  }
  assert.deepEqual(cache.get('flat'), new Uint8Array(0))
  assert.deepEqual(cache.get('nested'), { nested: new Uint8Array(0) })
  // Untouched arrays are stored whole.
  cache.set('kept', new Uint8Array(4096).fill(7))
  assert.deepEqual(cache.get('kept'), new Uint8Array(4096).fill(7))
})
