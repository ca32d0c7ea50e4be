import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { setTimeout as sleep } from 'node:timers/promises'

import { AudioFeatureCache } from '../index.js'

const vector = (n: number, fill = 0) => Float32Array.from({ length: n }, (_, i) => fill + i)

test('typed arrays come back equal, of the same type, as fresh copies', () => {
  const cache = new AudioFeatureCache()
  const values = {
    f32: vector(128, 0.5),
    f64: Float64Array.from([1.5, -2.25, Math.PI]),
    i16: Int16Array.from([-32768, 0, 32767]),
    u8: Uint8Array.from([0, 7, 255]),
    buf: Buffer.from('hello'),
    big: vector(5000, 1),
    empty: new Float32Array(0),
  }
  for (const [k, v] of Object.entries(values)) cache.set(k, v)
  for (const [k, v] of Object.entries(values)) {
    const got = cache.get(k) as ArrayLike<number>
    assert.equal(got.constructor, v.constructor, k)
    assert.deepEqual(Array.from(got), Array.from(v as ArrayLike<number>), k)
  }
  const a = cache.get('f32') as Float32Array
  a[0] = 99
  assert.equal((cache.get('f32') as Float32Array)[0], 0.5, 'a read is a copy')
  values.f32[1] = 42
  assert.equal((cache.get('f32') as Float32Array)[1], 1.5, 'a stored value is a copy')
  const b = cache.get('f32') as Float32Array
  const c = cache.get('f32') as Float32Array
  b[5] = -1
  assert.notEqual(c[5], -1, 'two reads never share memory')
})

test('JSON values round-trip as fresh objects', () => {
  const cache = new AudioFeatureCache()
  const patterns = [{ id: 'p1', score: 0.93, tags: ['kick'] }, { id: 'p2', score: 0.5, tags: [] }]
  cache.set('patterns', patterns)
  const got = cache.get('patterns') as typeof patterns
  assert.deepEqual(got, patterns)
  assert.notEqual(got, patterns)
  cache.set('n', 3)
  cache.set('s', 'text')
  cache.set('nil', null)
  assert.equal(cache.get('n'), 3)
  assert.equal(cache.get('s'), 'text')
  assert.equal(cache.get('nil'), null)
  assert.equal(cache.has('nil'), true)
})

test('long and non-ASCII keys work on every path', () => {
  const cache = new AudioFeatureCache()
  const long = 'k'.repeat(1000) + 'é'
  const unicode = 'ключ-🎵-音'
  cache.set(long, vector(3, 1))
  cache.set(unicode, vector(3, 2))
  assert.deepEqual(Array.from(cache.get(long) as Float32Array), [1, 2, 3])
  assert.deepEqual(Array.from(cache.get(unicode) as Float32Array), [2, 3, 4])
  assert.equal(cache.get('k'.repeat(1000)), undefined)
  assert.deepEqual(cache.getManyPacked([unicode, long]).missing, [])
  assert.deepEqual(cache.keys().sort(), [long, unicode].sort())
  assert.equal(cache.invalidate({ prefix: 'ключ' }), 1)
})

test('has, delete, clear, size, keys', () => {
  const cache = new AudioFeatureCache({ maxEntries: 100 })
  cache.set('a', vector(4))
  cache.set('b', vector(4))
  assert.equal(cache.size, 2)
  assert.deepEqual(cache.keys().sort(), ['a', 'b'])
  assert.equal(cache.has('a'), true)
  assert.equal(cache.delete('a'), true)
  assert.equal(cache.delete('a'), false)
  assert.equal(cache.has('a'), false)
  assert.equal(cache.get('a'), undefined)
  cache.clear()
  assert.equal(cache.size, 0)
})

test('getMany, setMany and getManyPacked', () => {
  const cache = new AudioFeatureCache()
  assert.equal(cache.setMany([['x', vector(3, 1)], ['y', vector(3, 10)]]), 2)
  const many = cache.getMany(['x', 'missing', 'y'])
  assert.equal(many.length, 3)
  assert.equal(many[1], undefined)
  assert.deepEqual(Array.from(many[2] as Float32Array), [10, 11, 12])
  const packed = cache.getManyPacked(['y', 'nope', 'x'])
  assert.equal(packed.width, 3)
  assert.deepEqual(packed.missing, [1])
  assert.deepEqual(Array.from(packed.data), [10, 11, 12, 0, 0, 0, 1, 2, 3])
  cache.set('short', vector(2))
  assert.throws(() => cache.getManyPacked(['x', 'short']), { name: 'TypeError', message: /2 floats/ })
  // setMany checks everything before storing anything.
  assert.throws(() => cache.setMany([['ok', vector(1)], ['bad', (() => 1) as unknown as Float32Array]]), TypeError)
  assert.equal(cache.has('ok'), false)
  assert.throws(() => cache.setMany([['lonely'] as unknown as [string, Float32Array]]), TypeError)
})

test('maxMemory is never exceeded and counts per-entry overhead', () => {
  const cache = new AudioFeatureCache({ maxMemory: '64KB', policy: 'lru' })
  for (let i = 0; i < 1000; i++) {
    cache.set(`k${i}`, vector(128, i))
    assert.ok(cache.getStats().bytes <= 64_000)
  }
  const stats = cache.getStats()
  assert.equal(stats.maxBytes, 64_000)
  assert.ok(stats.evictions > 0)
  assert.ok(stats.entries < 125, 'overhead is counted on top of the 512 value bytes')
  assert.equal(cache.has('k999'), true)
  assert.equal(cache.has('k0'), false)
})

test('maxEntries bounds the count; LRU evicts the least recently read', () => {
  const cache = new AudioFeatureCache({ maxEntries: 3, policy: 'lru' })
  for (const k of ['a', 'b', 'c']) cache.set(k, vector(1))
  cache.get('a')
  cache.set('d', vector(1))
  assert.deepEqual(cache.keys().sort(), ['a', 'c', 'd'])
})

test('a value larger than maxMemory is refused with E_TOO_LARGE and evicts nothing', () => {
  const cache = new AudioFeatureCache({ maxMemory: 4096 })
  cache.set('small', vector(8))
  assert.throws(() => cache.set('huge', vector(10_000)), (err: any) => {
    assert.equal(err.name, 'RangeError')
    assert.equal(err.code, 'E_TOO_LARGE')
    assert.match(err.message, /huge/)
    return true
  })
  assert.equal(cache.has('small'), true)
  assert.equal(cache.getStats().evictions, 0)
})

/** Resolves once `ms` have passed since `since` (performance.now()), by the clock. */
async function passed(since: number, ms: number) {
  while (performance.now() - since < ms) await sleep(Math.max(1, ms - (performance.now() - since)))
}

/** Resolves once `condition()` holds, checking every few ms; fails after `limitMs`. */
async function eventually(condition: () => boolean, what: string, limitMs = 30_000) {
  const start = performance.now()
  while (!condition()) {
    if (performance.now() - start > limitMs) assert.fail(`${what} did not happen within ${limitMs} ms`)
    await sleep(5)
  }
}

test('TTL: expired entries are never returned and are reclaimed without a read', async () => {
  const cache = new AudioFeatureCache({ ttl: 60_000 })
  const before = performance.now()
  cache.set('short', vector(4), { ttl: 200 })
  const fresh = cache.get('short')
  // Only meaningful if the machine did not stall past the TTL meanwhile.
  if (performance.now() - before < 200) assert.ok(fresh, 'a live entry is returned')
  cache.set('default', vector(4))
  cache.set('forever', vector(4), { ttl: 0 })
  const setAt = performance.now()
  await passed(setAt, 205)
  assert.equal(cache.get('short'), undefined, 'an expired entry is never returned')
  cache.set('reaped', vector(4), { ttl: 20 })
  const bytes = cache.getStats().bytes
  // The reaper thread removes it without any read.
  await eventually(() => cache.getStats().entries === 2, 'reaping')
  const stats = cache.getStats()
  assert.ok(stats.bytes < bytes)
  assert.equal(stats.expirations, 2)
  assert.ok(cache.has('default') && cache.has('forever'))
})

test('invalidate by tag and by prefix returns the count removed', () => {
  const cache = new AudioFeatureCache()
  cache.set('mel:a', vector(2), { tags: ['song-a'] })
  cache.set('mfcc:a', vector(2), { tags: ['song-a', 'mfcc'] })
  cache.set('mel:b', vector(2), { tags: ['song-b'] })
  assert.equal(cache.invalidate({ tag: 'song-a' }), 2)
  assert.equal(cache.invalidate({ prefix: 'mel:' }), 1)
  assert.equal(cache.size, 0)
  assert.throws(() => cache.invalidate({}), TypeError)
  assert.throws(() => cache.invalidate({ tag: 'x', prefix: 'y' }), TypeError)
})

test('getOrCompute calls compute once for concurrent misses', async () => {
  const cache = new AudioFeatureCache()
  let calls = 0
  const compute = async () => {
    calls++
    await sleep(20)
    return vector(16, 7)
  }
  const results = await Promise.all(Array.from({ length: 10 }, () => cache.getOrCompute('k', compute)))
  assert.equal(calls, 1)
  for (const r of results) assert.deepEqual(Array.from(r as Float32Array), Array.from(vector(16, 7)))
  const again = await cache.getOrCompute('k', compute)
  assert.equal(calls, 1)
  assert.ok(again instanceof Float32Array)
  const stats = cache.getStats()
  assert.ok(stats.estimatedTimeSavedMs >= 15, `saved ${stats.estimatedTimeSavedMs} ms`)
  assert.deepEqual(await cache.getOrCompute('sync', () => ({ ok: true })), { ok: true })
  assert.deepEqual(await cache.getOrCompute('sync', () => ({ ok: false })), { ok: true }, 'second call is a hit')
})

test('a compute that never settles does not keep Node alive', () => {
  const script = `
    const { AudioFeatureCache } = require(${JSON.stringify(require.resolve('../index.js'))})
    const cache = new AudioFeatureCache()
    cache.getOrCompute('k', () => new Promise(() => {}))
    cache.warm(['a', 'b'], () => new Promise(() => {}))
  `
  const run = spawnSync(process.execPath, ['-e', script], { timeout: 10_000 })
  assert.equal(run.status, 0, `exit status ${run.status}, signal ${run.signal}`)
})

test('getOrCompute shares a rejection and does not cache it', async () => {
  const cache = new AudioFeatureCache()
  let calls = 0
  const failing = async () => {
    calls++
    await sleep(5)
    throw new Error('model offline')
  }
  const settled = await Promise.allSettled([cache.getOrCompute('k', failing), cache.getOrCompute('k', failing)])
  assert.equal(calls, 1)
  for (const s of settled) {
    assert.equal(s.status, 'rejected')
    assert.match(String((s as PromiseRejectedResult).reason?.message ?? s), /model offline/)
  }
  const [a, b] = settled as PromiseRejectedResult[]
  assert.equal(a.reason, b.reason, 'every caller gets the same rejection')
  assert.equal(cache.has('k'), false)
  await assert.rejects(cache.getOrCompute('k', () => { throw new TypeError('sync throw') }), /sync throw/)
  await assert.rejects(cache.getOrCompute('k', async () => (() => 1) as unknown as Float32Array), TypeError)
  assert.deepEqual(await cache.getOrCompute('k', async () => [1, 2]), [1, 2])
  assert.equal(calls, 1)
})

test('warm loads missing keys with bounded concurrency and reports failures', async () => {
  const cache = new AudioFeatureCache()
  cache.set('k0', vector(1))
  let active = 0
  let peak = 0
  const result = await cache.warm(['k0', 'k1', 'k2', 'k3', 'k4', 'bad', 'k1'], async (key) => {
    active++
    peak = Math.max(peak, active)
    await sleep(10)
    active--
    if (key === 'bad') throw new Error('cannot load bad')
    return vector(4, Number(key.slice(1)))
  }, { concurrency: 2, tags: ['warm'] })
  assert.equal(result.enabled, true)
  assert.equal(result.loaded, 4)
  assert.equal(result.skipped, 1)
  assert.equal(result.failed, 1)
  assert.equal(result.errors[0].key, 'bad')
  assert.match(result.errors[0].message, /cannot load bad/)
  assert.ok(peak <= 2, `peak concurrency ${peak}`)
  assert.deepEqual(Array.from(cache.get('k3') as Float32Array), [3, 4, 5, 6])
  assert.equal(cache.invalidate({ tag: 'warm' }), 4)
  const sync = await cache.warm(['s', 'throws', 'fn'], (key) => {
    if (key === 'throws') throw new Error('sync failure')
    if (key === 'fn') return (() => 1) as unknown as string
    return key.toUpperCase()
  })
  assert.equal(sync.loaded, 1)
  assert.equal(sync.failed, 2)
  assert.deepEqual(sync.errors.map((e) => e.key).sort(), ['fn', 'throws'])
  assert.match(sync.errors.find((e) => e.key === 'throws')!.message, /sync failure/)
  assert.equal(cache.get('s'), 'S')
})

test('warm is a clear no-op when warming is disabled', async () => {
  const cache = new AudioFeatureCache({ enableWarming: false })
  let called = false
  const result = await cache.warm(['a', 'b'], () => { called = true; return 1 })
  assert.deepEqual({ ...result, durationMs: 0 }, { enabled: false, loaded: 0, skipped: 2, fromRedis: 0, failed: 0, errors: [], durationMs: 0 })
  assert.equal(called, false)
})

test('keyFor is stable, content-based and ignores parameter order', () => {
  const audio = vector(16000, 0.25)
  const k1 = AudioFeatureCache.keyFor(audio, { nFft: 512, hopLength: 160, nested: { a: 1, b: [1, 2] } })
  const k2 = AudioFeatureCache.keyFor(Float32Array.from(audio), { nested: { b: [1, 2], a: 1 }, hopLength: 160, nFft: 512 })
  assert.match(k1, /^[0-9a-f]{32}$/)
  assert.equal(k1, k2)
  assert.notEqual(k1, AudioFeatureCache.keyFor(audio, { nFft: 1024, hopLength: 160, nested: { a: 1, b: [1, 2] } }))
  const changed = Float32Array.from(audio)
  changed[8000] += 1e-3
  assert.notEqual(AudioFeatureCache.keyFor(audio), AudioFeatureCache.keyFor(changed))
  assert.notEqual(AudioFeatureCache.keyFor(new Float32Array(4)), AudioFeatureCache.keyFor(new Int16Array(8)))
  assert.throws(() => AudioFeatureCache.keyFor([1, 2, 3] as unknown as Float32Array), TypeError)
})

test('getStats counts hits, misses and access time; resetStats zeroes them', () => {
  const cache = new AudioFeatureCache()
  cache.set('a', vector(4))
  cache.get('a')
  cache.get('a')
  cache.get('nope')
  let stats = cache.getStats()
  assert.equal(stats.hits, 2)
  assert.equal(stats.misses, 1)
  assert.ok(Math.abs(stats.hitRate - 2 / 3) < 1e-9)
  assert.equal(stats.sets, 1)
  assert.equal(stats.entries, 1)
  assert.ok(stats.averageAccessTimeMs >= 0)
  cache.resetStats()
  stats = cache.getStats()
  assert.equal(stats.hits + stats.misses, 0)
  assert.equal(stats.entries, 1)
})

test('every policy keeps working under churn', () => {
  for (const policy of ['lru', 'lfu', 'ttl', 'tinylfu', 'hybrid'] as const) {
    const cache = new AudioFeatureCache({ maxEntries: 50, policy })
    for (let i = 0; i < 2000; i++) {
      // Skewed: small key numbers are far more frequent.
      const k = `k${Math.floor(300 ** ((i * 0.6180339887) % 1))}`
      if (!cache.get(k)) cache.set(k, vector(8, i))
    }
    assert.ok(cache.size <= 50, policy)
    assert.ok(cache.getStats().hits > 0, policy)
  }
})

test('sizes accept bytes or strings with decimal and binary units', () => {
  const cases: Array<[number | string, number]> = [
    [1024, 1024],
    ['512MB', 512_000_000],
    ['4GB', 4_000_000_000],
    ['1.5GiB', 1_610_612_736],
    ['64 KiB', 65_536],
  ]
  for (const [maxMemory, bytes] of cases) {
    assert.equal(new AudioFeatureCache({ maxMemory }).getStats().maxBytes, bytes, String(maxMemory))
  }
})

test('bad options and arguments throw clear errors', () => {
  const bad: Array<[unknown, RegExp]> = [
    [{ maxEntries: 0 }, /maxEntries/],
    [{ maxEntries: -5 }, /maxEntries/],
    [{ maxEntries: 1.5 }, /maxEntries/],
    [{ maxEntries: NaN }, /maxEntries/],
    [{ maxMemory: '4XB' }, /unknown size unit "XB"/],
    [{ maxMemory: -1 }, /negative/],
    [{ maxMemory: NaN }, /finite/],
    [{ maxMemory: 0 }, /greater than 0/],
    [{ ttl: -1 }, /ttl/],
    [{ ttl: NaN }, /ttl/],
    [{ policy: 'fifo' }, /policy|fifo/i],
  ]
  for (const [options, message] of bad) {
    assert.throws(() => new AudioFeatureCache(options as any), (err: Error & { code?: string }) => {
      assert.match(err.message, message)
      assert.ok(err.code, `error for ${JSON.stringify(options)} has a code`)
      return true
    }, JSON.stringify(options))
  }
  const cache = new AudioFeatureCache()
  assert.throws(() => cache.get(42 as unknown as string), TypeError)
  assert.throws(() => cache.set(42 as unknown as string, vector(1)))
  assert.throws(() => cache.set('f', (() => 1) as unknown as Float32Array), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' })
  assert.throws(() => cache.set('u', undefined as unknown as Float32Array), TypeError)
  const circular: Record<string, unknown> = {}
  circular.self = circular
  assert.throws(() => cache.set('c', circular), { name: 'TypeError', message: /value\.self: a circular reference is not storable/ })
  assert.throws(() => cache.getOrCompute('k', 5 as unknown as () => number), { name: 'TypeError', message: /compute must be a function/ })
  assert.throws(() => cache.warm('k' as unknown as string[], () => 1), { name: 'TypeError', message: /keys must be an array/ })
  assert.throws(() => cache.warm(['k'], null as unknown as () => number), { name: 'TypeError', message: /loader must be a function/ })
  assert.throws(() => cache.getMany([1] as unknown as string[]), { name: 'TypeError', message: /keys\[0\] must be a string/ })
  assert.throws(() => cache.getManyPacked(['a', null] as unknown as string[]), { name: 'TypeError', message: /keys\[1\]/ })
  assert.throws(() => cache.set('t', vector(1), { ttl: -5 }), RangeError)
  assert.throws(() => cache.set('t', vector(1), { ttl: NaN }), RangeError)
  assert.equal(cache.size, 0)
})
