// One batch of fuzz cases, run in a process of its own by scripts/fuzz.js.
// argv: <seed> <cases>. Prints one JSON line: { ran, threw, unsettled: [...] }.
// A crash of the addon kills this process (the parent sees the signal); a
// hang shows as the parent's timeout; a promise the addon never settles is
// listed in `unsettled` unless the case gave it a callback that never settles.
'use strict';
const path = require('node:path');
const g = require(path.join(__dirname, '..', 'index.js'));

const seed = Number(process.argv[2]) >>> 0;
const count = Number(process.argv[3]);
let state = seed || 1;
const rand = () => {
  state ^= state << 13; state >>>= 0;
  state ^= state >>> 17;
  state ^= state << 5; state >>>= 0;
  return state / 2 ** 32;
};
const pick = (list) => list[Math.floor(rand() * list.length)];

// Values that have broken native code before, or could.
const detached = () => { const a = new Float32Array(16); structuredClone(a.buffer, { transfer: [a.buffer] }); return a; };
const shared = () => new Float32Array(new SharedArrayBuffer(64));
const throwingGetter = () => Object.defineProperty({}, 'sampleRate', { enumerable: true, get() { throw new Error('getter throws'); } });
const hostileProxy = () => new Proxy({}, { get() { throw new Error('proxy get'); }, ownKeys() { throw new Error('proxy keys'); }, has() { throw new Error('proxy has'); } });
const NEVER = () => new Promise(() => {});
const scalars = [undefined, null, true, false, 0, -0, 1, -1, 1.5, NaN, Infinity, -Infinity, 2 ** 53, 1e300, -1e300, 2 ** 32, '', 'x', '4MB', '0', 'a'.repeat(300), '\uD800', 'é€😀', 'cuda', 'auto', 'cpu', 10n, Symbol('s')];
function value(depth = 0) {
  const r = rand();
  if (r < 0.35 || depth > 2) return pick(scalars);
  if (r < 0.55) {
    return pick([
      () => new Float32Array(Math.floor(rand() * 4096)).map(() => rand() * 2 - 1),
      () => new Float32Array(0),
      () => Float32Array.of(NaN, 1),
      () => new Float64Array(8), () => new Int16Array(8), () => new Uint8Array(8), () => Buffer.from('hi'),
      () => new Int32Array(4), () => new ArrayBuffer(8), () => new DataView(new ArrayBuffer(8)),
      detached, shared,
    ])();
  }
  if (r < 0.65) return pick([() => new Array(2 ** 32 - 1), () => [], () => [1, 'a', null], () => Array.from({ length: 3 }, () => value(depth + 1)), () => [new Float32Array(160), new Float32Array(16)]])();
  if (r < 0.75) return pick([throwingGetter, hostileProxy, () => Object.freeze({}), () => new Map([[1, 2]]), () => new Date(), () => new (class Foo {})(), () => ({ a: { b: value(depth + 1) } })])();
  if (r < 0.85) return pick([() => () => { throw new Error('callback throws'); }, () => NEVER, () => () => 42, () => () => Promise.reject(new Error('rejects')), () => (items) => (Array.isArray(items) ? items.map(() => 1) : 1)])();
  return options(depth);
}
const KNOWN = ['sampleRate', 'nFft', 'hopLength', 'features', 'nMels', 'nMfcc', 'fmax', 'topDb', 'window', 'maxEntries', 'maxMemory', 'ttl', 'policy', 'tags', 'device',
  'optimizationThreshold', 'idleTrimMs', 'gpuChunkSize', 'maxBatchSize', 'maxWaitMs', 'batchTimeoutMs', 'threads', 'maxQueueSize', 'queueFullBehavior', 'featureOptions',
  'priority', 'signal', 'onProgress', 'metadata', 'id', 'concurrency', 'force', 'checkIntervalMs', 'alertThresholds', 'lastMinutes', 'component', 'operation', 'min', 'max', 'mono', 'tag', 'prefix', 'unknownKey',
  'options', 'maxConcurrent', 'idleTimeoutMs', 'highWaterMark', 'topDbReference', 'onFrames', 'cacheKey', 'featureCache', 'featureDevice', 'memoryManager'];
function options(depth) {
  const o = rand() < 0.7 ? { sampleRate: pick([16000, 8000, 44100, 0, NaN]) } : {};
  const n = Math.floor(rand() * 4);
  for (let i = 0; i < n; i++) o[pick(KNOWN)] = value(depth + 1);
  if (rand() < 0.1) o.signal = pick([new AbortController().signal, AbortSignal.abort(), { addEventListener() { throw new Error('no'); } }]);
  return o;
}

const cache = new g.AudioFeatureCache({ maxMemory: '64MB' });
const memory = new g.GAMAMemoryManager({ maxMemory: '256MB', reservedMemory: 0, device: 'cpu' });
const batch = new g.BatchProcessor({ threads: 2, maxQueueSize: 10000, batchTimeoutMs: 20000 });
batch.registerProcessor('P', (items) => items.map((i) => i.id));
const profiler = new g.PerformanceProfiler({ featureCache: cache, memoryManager: memory, batchProcessor: batch, checkIntervalMs: 1000 });
const block = () => { try { return memory.allocate(pick([64, 4096])); } catch { return null; } };
const streams = new g.FeatureStreams({ options: { sampleRate: 16000, nFft: 512, hopLength: 160, features: ['rms', 'logMel'] }, maxConcurrent: 64, idleTimeoutMs: 500, featureCache: cache });
let utterance = 0;
/** An open stream (a new one now and then), or null past the limit. */
const stream = () => {
  try {
    return rand() < 0.3 || streams.open === 0 ? streams.start(`f${utterance++}`, rand() < 0.5 ? undefined : options(1)) : streams.get(pick(['f0', `f${utterance - 1}`]));
  } catch { return null; }
};
const instances = { cache, memory, batch, profiler, streams };

// Every export, constructor, method and getter, called with generated arguments.
const targets = [
  (a) => g.extractFeatures(a[0], a[1]),
  (a) => g.extractFeaturesBatch(a[0], a[1]),
  (a) => g.loadAudioSync(a[0], a[1]),
  (a) => g.loadAudio(a[0], a[1]),
  (a) => g.cudaAvailable(a[0]),
  (a) => g.AudioFeatureCache.keyFor(a[0], a[1]),
  (a) => new g.AudioFeatureCache(a[0]),
  (a) => new g.GAMAMemoryManager(a[0]),
  (a) => new g.BatchProcessor(a[0]).close(a[1]),
  (a) => new g.PerformanceProfiler(a[0]),
  (a) => g.AudioFeatureCache(a[0]),
  ...['get', 'set', 'has', 'delete', 'getMany', 'getManyPacked', 'setMany', 'getOrCompute', 'warm', 'invalidate', 'getStats', 'resetStats', 'keys', 'getAsync', 'getManyAsync', 'flush', 'close'].map((m) => (a) => cache[m](a[0], a[1], a[2])),
  (a) => cache.size,
  ...['allocate', 'tryAllocate', 'getMemoryUsage', 'getOptimizationOpportunities', 'recommendBatchSize', 'getStats', 'resetPeak', 'trim', 'onPressure'].map((m) => (a) => memory[m](a[0], a[1], a[2])),
  (a) => { const b = block(); if (!b) return; try { return pick([() => b.view(a[0]), () => b.copyFrom(a[0], a[1]), () => b.copyTo(a[0], a[1]), () => b.retain(), () => b.bytes])(); } finally { if (rand() < 0.8) try { b.release(); } catch {} } },
  ...['addItem', 'addItems', 'registerProcessor', 'cancel', 'onProgress', 'getStats', 'onIdle', 'drain'].map((m) => (a) => batch[m](a[0], a[1], a[2])),
  (a) => batch.addItem(pick(['MEASURE', 'ANALYZE', 'EXTRACT_FEATURES', 'P']), a[0], a[1]),
  (a) => batch.addItems(pick(['MEASURE', 'ANALYZE', 'EXTRACT_FEATURES', 'P']), a[0], a[1]),
  (a) => new g.FeatureStreams(a[0]),
  ...['start', 'get', 'push', 'finalize', 'abort', 'getStats', 'transform'].map((m) => (a) => streams[m](a[0], a[1], a[2])),
  (a) => { const s = stream(); if (!s) return; return pick([() => s.push(a[0]), () => s.push(new Float32Array(320).fill(0.1)), () => s.finalize(), () => s.abort(), () => s.readable(a[0]).on('error', () => {}).resume(), async () => { for await (const b of s) if (rand() < 0.3) break; }, () => s.utteranceId, () => s.closed])(); },
  ...['profileOperation', 'getPerformanceSummary', 'getBottlenecks', 'checkAlerts', 'onAlert', 'getStats', 'metrics', 'reset'].map((m) => (a) => profiler[m](a[0], a[1], a[2])),
  (a) => { const inst = pick(Object.values(instances)); const proto = Object.getPrototypeOf(inst); const name = pick(Object.getOwnPropertyNames(proto).filter((n) => n !== 'constructor' && n !== 'close')); return Reflect.apply(Object.getOwnPropertyDescriptor(proto, name)?.value ?? (() => inst[name]), pick([inst, {}, null, cache, memory]), a); },
];

let ran = 0;
let threw = 0;
/** Errors the addon makes carry a code; user code's own errors pass through. */
const USER = /^(getter throws|proxy (get|keys|has)|callback throws|rejects|no)$/;
const clear = (e) =>
  e instanceof Error && (typeof e.code === 'string' || USER.test(e.message) || (e instanceof TypeError && e.message === 'Illegal invocation'));
const unclear = [];
// Listener callbacks that throw are reported as uncaught exceptions, as an
// EventEmitter's would be: expected for the fuzzer's own throwing callbacks,
// a failure for anything else.
// Likewise a listener's own rejected promise is the listener's unhandled rejection.
let reported = 0;
process.on('uncaughtException', (e) => {
  if (e && e.message === 'callback throws') reported++;
  else throw e;
});
process.on('unhandledRejection', (e) => {
  if (e && e.message === 'rejects') reported++;
  else throw e;
});
const pending = [];
for (let i = 0; i < count; i++) {
  const args = [value(), value(), value()];
  const allowedToHang = args.some((v) => v === NEVER);
  let result;
  try {
    result = pick(targets)(args);
  } catch (e) {
    threw++;
    if (!clear(e)) unclear.push(String(e && e.message).slice(0, 160) + (process.env.FUZZ_STACKS ? `\n${e && e.stack}` : ''));
  }
  ran++;
  if (result && typeof result.then === 'function') {
    let settled = false;
    const tracked = Promise.resolve(result).then(() => { settled = true; }, () => { settled = true; });
    pending.push({ i, settled: () => settled, allowedToHang, tracked });
  }
}
(async () => {
  await batch.close();
  await streams.close();
  // Give every promise the time the work takes, then list what never settled.
  const deadline = Date.now() + 20000;
  while (pending.some((p) => !p.settled() && !p.allowedToHang) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const unsettled = pending.filter((p) => !p.settled() && !p.allowedToHang).map((p) => p.i);
  process.stdout.write(JSON.stringify({ ran, threw, reported, unsettled, unclear }) + '\n');
  process.exit(0);
})();
