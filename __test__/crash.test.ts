// Reproducers of inputs that once aborted or hung the process: each runs in
// a child process that must exit on its own with status 0 (a crash shows as
// a signal, a hang or a stranded promise as the timeout).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'

const addon = JSON.stringify(require.resolve('../index.js'))

function runs(name: string, body: string, flags: string[] = []) {
  const script = `
    const g = require(${addon});
    const { AudioFeatureCache, BatchProcessor, GAMAMemoryManager, PerformanceProfiler, extractFeatures, extractFeaturesBatch } = g;
    const expectError = (f, pattern) => {
      try { f() } catch (e) { if (pattern.test(String(e && e.message))) return; throw e }
      throw new Error('expected an error matching ' + pattern)
    };
    const expectRejection = (p, pattern) => p.then(
      () => { throw new Error('expected a rejection matching ' + pattern) },
      (e) => { if (!pattern.test(String(e && e.message))) throw e });
    (async () => { ${body} })().then(
      () => { process.exitCode = 0 },
      (e) => { console.error(e); process.exitCode = 1 });
  `
  const run = spawnSync(process.execPath, [...flags, '-e', script], { encoding: 'utf8', timeout: 120_000 })
  assert.equal(run.signal, null, `${name}: killed by ${run.signal}\n${run.stderr}`)
  assert.equal(run.status, 0, `${name}: exit ${run.status}\n${run.stderr}`)
}

test('huge durations are RangeErrors, not aborts (C1)', () => {
  runs('durations', `
    expectError(() => new BatchProcessor({ maxWaitMs: 1e300 }), /maxWaitMs/);
    expectError(() => new BatchProcessor({ batchTimeoutMs: 1e22 }), /batchTimeoutMs/);
    expectError(() => new GAMAMemoryManager({ idleTrimMs: 1e300 }), /idleTrimMs/);
    expectError(() => new PerformanceProfiler({ checkIntervalMs: 1e300 }), /checkIntervalMs/);
    expectError(() => new PerformanceProfiler({ alertThresholds: { p95Ms: 1e300 } }), /p95Ms/);
    const cache = new AudioFeatureCache();
    expectError(() => new AudioFeatureCache({ ttl: 1e300 }), /ttl/);
    expectError(() => cache.set('k', 1, { ttl: 1e300 }), /ttl/);
    await expectRejection(Promise.resolve().then(() => cache.warm(['k'], () => 1, { ttl: 1e300 })), /ttl/);
    // The longest duration allowed works end to end.
    const bp = new BatchProcessor({ batchTimeoutMs: 2147483647, maxWaitMs: 0 });
    await bp.addItem('MEASURE', new Float32Array(8));
    const mm = new GAMAMemoryManager({ idleTrimMs: 2147483647, device: 'cpu' });
    mm.allocate(4096).release();
    await bp.close();
  `)
})

test('sparse arrays with a huge declared length are read element by element (C2)', () => {
  runs('sparse', `
    const huge = () => new Array(2 ** 32 - 1);
    const o = { sampleRate: 16000 };
    expectError(() => extractFeaturesBatch(huge(), o), /clips\\[0\\].*hole/);
    expectError(() => extractFeatures(new Float32Array(100), { sampleRate: 16000, features: huge() }), /features/);
    const cache = new AudioFeatureCache();
    expectError(() => cache.getMany(huge()), /keys\\[0\\].*hole/);
    expectError(() => cache.getManyPacked(huge()), /keys\\[0\\].*hole/);
    expectError(() => cache.setMany(huge()), /entries\\[0\\]/);
    expectError(() => cache.warm(huge(), () => 1), /keys\\[0\\].*hole/);
    expectError(() => cache.set('k', 1, { tags: huge() }), /tags/);
    const bp = new BatchProcessor();
    expectError(() => bp.addItems('MEASURE', huge()), /data\\[0\\].*hole/);
    bp.registerProcessor('P', (items) => items.map(() => 1));
    expectError(() => bp.addItems('P', huge()), /data\\[0\\].*hole/);
    await bp.onIdle();
    await bp.close();
  `)
})

test('results larger than the limit are refused before anything is allocated (C3)', () => {
  runs('too large', `
    const o = { sampleRate: 16000, nFft: 2 ** 20, hopLength: 1, nMels: 8, nMfcc: 8, features: ['stft'] };
    try { extractFeatures(new Float32Array(1e5), o); throw new Error('no error') }
    catch (e) { if (e.code !== 'E_TOO_LARGE' || !(e instanceof RangeError)) throw e }
    await expectRejection(Promise.resolve().then(() => extractFeaturesBatch([new Float32Array(1e5)], o)), /more than the limit/);
    const bp = new BatchProcessor({ featureOptions: o });
    const err = await bp.addItem('EXTRACT_FEATURES', new Float32Array(1e5)).then(() => null, (e) => e);
    if (!err || err.code !== 'E_TOO_LARGE') throw new Error('batch item: ' + (err && err.code));
    await bp.close();
  `)
})

test('a batch input detached and collected while the batch runs is never read (C4)', () => {
  runs('detach', `
    const a = new Float32Array(4e6).fill(0.1);
    const p = extractFeaturesBatch([a], { sampleRate: 16000, features: ['mfcc'] });
    structuredClone(a.buffer, { transfer: [a.buffer] });
    globalThis.gc();
    const [out] = await p;
    if (out.mfcc.frames !== 1 + Math.floor(4e6 / 512)) throw new Error('frames ' + out.mfcc.frames);
  `, ['--expose-gc'])
})

test('block offsets past 2^64 are refused, not wrapped (C5)', () => {
  runs('offsets', `
    const mm = new GAMAMemoryManager({ device: 'cpu' });
    const b = mm.allocate(64);
    for (const offset of [1e21, 1e300, Number.MAX_VALUE, 2 ** 64, -1, 0.5, NaN, Infinity]) {
      expectError(() => b.copyFrom(new Uint8Array(4), offset), /offset/);
      expectError(() => b.copyTo(new Uint8Array(4), offset), /offset/);
    }
    b.copyFrom(Uint8Array.of(1, 2, 3, 4), 60);
    const out = new Uint8Array(4);
    b.copyTo(out, 60);
    if (out.join() !== '1,2,3,4') throw new Error(out.join());
    b.release();
  `)
})

test('setters that call back into the addon during its own calls do not abort (C6)', () => {
  runs('re-entrancy', `
    const b = new BatchProcessor();
    Object.defineProperty(Array.prototype, '0', { configurable: true, set(v) { b.getStats(); Object.defineProperty(this, '0', { value: v, writable: true, enumerable: true, configurable: true }) } });
    const levels = await b.addItems('MEASURE', [new Float32Array(64)]);
    delete Array.prototype[0];
    if (levels.length !== 1) throw new Error('results ' + levels.length);
    let calls = 0;
    b.registerProcessor('P', (items) => items.map(() => 'ok'));
    Object.defineProperty(Object.prototype, 'data', { configurable: true, set(v) { calls++; if (calls < 3) b.addItem('P', 'nested').catch(() => {}); Object.defineProperty(this, 'data', { value: v, writable: true, enumerable: true, configurable: true }) } });
    await b.addItem('P', 'outer');
    delete Object.prototype.data;
    await b.onIdle();
    const profiler = new PerformanceProfiler({ featureCache: new AudioFeatureCache() });
    Object.defineProperty(Object.prototype, 'hit_rate', { configurable: true, set(v) { profiler.onAlert(() => {})(); Object.defineProperty(this, 'hit_rate', { value: v, writable: true, enumerable: true, configurable: true }) } });
    profiler.getStats();
    delete Object.prototype.hit_rate;
    await b.close();
  `)
})

test('a signal whose addEventListener throws takes the call back; nothing is stranded (H1)', () => {
  runs('throwing signal', `
    const bp = new BatchProcessor();
    for (const n of [2, 200]) {
      const signal = { aborted: false, addEventListener() { throw new Error('listener refused') }, removeEventListener() {} };
      expectError(() => bp.addItems('MEASURE', Array.from({ length: n }, () => new Float32Array(8)), { signal }), /listener refused/);
    }
    await bp.onIdle();
    await bp.close();
  `)
})

test('close() starts a waiting partial batch at once (H2)', () => {
  runs('close flushes', `
    const bp = new BatchProcessor({ maxWaitMs: 2147483647, maxBatchSize: 64 });
    const item = bp.addItem('MEASURE', new Float32Array(8));
    await bp.close();
    await item;
  `)
})
