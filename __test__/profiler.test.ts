import { test } from 'node:test';
import assert from 'node:assert/strict';

import {
  AudioFeatureCache,
  BatchOperationType,
  BatchProcessor,
  GAMAMemoryManager,
  PerformanceAlert,
  PerformanceProfiler,
  extractFeatures,
} from '../index.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test('profileOperation times sync and async user code and passes results and errors through', async () => {
  const profiler = new PerformanceProfiler();
  profiler.reset();
  assert.equal(profiler.profileOperation('model', 'tokenize', () => 41 + 1), 42);
  const value = await profiler.profileOperation('model', 'inference', async () => {
    await sleep(30);
    return 'done';
  });
  assert.equal(value, 'done');
  assert.throws(() => profiler.profileOperation('model', 'broken', () => {
    throw new RangeError('bad input');
  }), RangeError);
  await assert.rejects(profiler.profileOperation('model', 'rejected', async () => Promise.reject(new Error('nope'))), /nope/);
  assert.throws(() => profiler.profileOperation('model', 'x', 5 as unknown as () => number), TypeError);
  const summary = profiler.getPerformanceSummary({ component: 'model' });
  const inference = summary.find((s) => s.operation === 'inference')!;
  assert.equal(inference.count, 1);
  assert.ok(inference.meanMs >= 29 && inference.p95Ms >= 29, JSON.stringify(inference));
  assert.deepEqual(summary.map((s) => s.operation).sort(), ['broken', 'inference', 'rejected', 'tokenize']);
  const bottlenecks = profiler.getBottlenecks();
  assert.equal(bottlenecks[0].operation, 'inference');
  assert.ok(bottlenecks.every((b) => b.share > 0.2));
  assert.equal(profiler.getPerformanceSummary({ lastMinutes: 5 }).length, 4);
  for (const lastMinutes of [NaN, -3, 0, 61]) {
    assert.throws(() => profiler.getPerformanceSummary({ lastMinutes }), RangeError, String(lastMinutes));
  }
});

test('native operations are measured without any work from the user', async () => {
  const profiler = new PerformanceProfiler();
  profiler.reset();
  const cache = new AudioFeatureCache();
  for (let i = 0; i < 64; i++) cache.set(`k${i}`, new Float32Array(8));
  for (let i = 0; i < 64; i++) cache.get(`k${i}`);
  const clip = new Float32Array(16000).map((_, i) => Math.sin(i / 5));
  extractFeatures(clip, { sampleRate: 16000, nFft: 512, hopLength: 160 });
  const bp = new BatchProcessor();
  await bp.addItems(BatchOperationType.ANALYZE, [clip, clip]);
  await bp.close();
  new GAMAMemoryManager({ maxMemory: '16MiB', device: 'cpu' }).allocate(1024).release();
  const names = profiler.getPerformanceSummary().map((s) => `${s.component}/${s.operation}`);
  for (const name of ['cache/set', 'cache/get', 'features/extract', 'batch/ANALYZE.wait', 'batch/ANALYZE.run', 'memory/allocate_host']) {
    assert.ok(names.includes(name), `${name} in ${names.join(', ')}`);
  }
});

test('alerts fire with the seed defaults, once per episode, and go to listeners', { timeout: 60_000 }, async () => {
  const memory = new GAMAMemoryManager({ maxMemory: '9MiB', reservedMemory: 0, device: 'cpu' });
  const cache = new AudioFeatureCache();
  const profiler = new PerformanceProfiler({ memoryManager: memory, featureCache: cache, checkIntervalMs: 20, alertThresholds: { p95Ms: 20 } });
  profiler.reset();
  const kinds = ['memory-pressure', 'allocation-failures', 'cache-degradation', 'high-latency'];
  const seen: PerformanceAlert[] = [];
  let allSeen!: () => void;
  const everyKind = new Promise<void>((resolve) => (allSeen = resolve));
  const off = profiler.onAlert((a) => {
    seen.push(a);
    if (kinds.every((k) => seen.some((s) => s.kind === k))) allSeen();
  });
  const held = memory.allocate('8MiB');
  assert.equal(memory.tryAllocate('4MiB'), null);
  for (let i = 0; i < 200; i++) cache.get(`missing${i}`);
  await profiler.profileOperation('model', 'slow', () => sleep(40));
  // The unref'd timer checks every 20 ms: wait for its alerts, however long
  // the machine takes (a ref'd timer keeps the event loop alive meanwhile).
  const alive = setInterval(() => {}, 1000);
  await everyKind;
  clearInterval(alive);
  // Further checks of the same ongoing condition raise nothing new.
  profiler.checkAlerts();
  profiler.checkAlerts();
  const count = seen.filter((a) => a.kind === 'memory-pressure').length;
  assert.equal(count, 1, 'an ongoing condition alerts once');
  assert.ok(profiler.checkAlerts().some((a) => a.kind === 'memory-pressure'));
  off();
  held.release();
  assert.ok(!profiler.checkAlerts().some((a) => a.kind === 'memory-pressure'));
  assert.throws(() => profiler.onAlert(1 as unknown as () => void), TypeError);
  assert.throws(() => new PerformanceProfiler({ memoryManager: {} as GAMAMemoryManager }), TypeError);
  assert.throws(() => new PerformanceProfiler({ alertThresholds: { memoryPercent: NaN } }), RangeError);
  assert.throws(() => new PerformanceProfiler({ alertThresholds: { cacheHitRate: 2 } }), RangeError);
  assert.throws(() => new PerformanceProfiler({ alertThresholds: { allocationFailures: 0.5 } }), RangeError);
});

test('getStats has the seed shape and metrics() is valid Prometheus text', async () => {
  const memory = new GAMAMemoryManager({ maxMemory: '64MiB', device: 'cpu' });
  const cache = new AudioFeatureCache();
  const batch = new BatchProcessor();
  const profiler = new PerformanceProfiler({ memoryManager: memory, featureCache: cache, batchProcessor: batch });
  cache.set('a', new Float32Array(4));
  cache.get('a');
  cache.get('b');
  await batch.addItem(BatchOperationType.MEASURE, new Float32Array(10));
  const stats = profiler.getStats();
  assert.equal(stats.cache!.hit_rate, 50);
  assert.equal(stats.cache!.hits, 1);
  assert.ok(stats.memory.system.total_gb > 0);
  assert.equal(stats.memory.gpu, null);
  assert.equal(stats.batch!.completed, 1);
  assert.ok(Array.isArray(stats.operations));
  const text = profiler.metrics();
  assert.match(text, /^# HELP gama_operation_duration_seconds/m);
  assert.match(text, /gama_operation_duration_seconds\{component="cache",operation="set",quantile="0.95"\} [0-9.e-]+/);
  assert.match(text, /^gama_cache_hit_ratio 0.5$/m);
  assert.match(text, /^gama_batch_completed 1$/m);
  for (const line of text.trim().split('\n')) {
    assert.match(line, /^(# (HELP|TYPE) \w+ .+|\w+(\{[^}]*\})? -?[0-9.e+-]+)$/, line);
  }
  await batch.close();
});
