import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

import {
  AudioFeatureCache,
  BatchItem,
  BatchOperationType,
  BatchProcessor,
  ExtractedFeatures,
  FeatureName,
  GAMAMemoryManager,
  ItemProgress,
  extractFeatures,
} from '../index.js';

const tone = (n: number, freq = 440, rate = 16000) =>
  Float32Array.from({ length: n }, (_, i) => 0.5 * Math.sin((2 * Math.PI * freq * i) / rate));
const speech = { sampleRate: 16000, nFft: 512, hopLength: 160, nMels: 64, nMfcc: 13, features: ['logMel', 'mfcc'] as ('logMel' | 'mfcc')[] };
/** Options that make a long clip take long: one FFT every 16 samples. */
const slow = { sampleRate: 16000, nFft: 512, hopLength: 16, features: ['spectralCentroid'] as 'spectralCentroid'[] };

async function rejection(p: Promise<unknown>): Promise<Error & { code?: string; cause?: unknown }> {
  try {
    await p;
  } catch (err) {
    return err as Error & { code?: string };
  }
  assert.fail('expected a rejection');
}

test('addItems copies each item whole, whatever the chunk and buffer boundaries it straddles', async () => {
  const bp = new BatchProcessor({ threads: 2 })
  // Lengths from 1 to 600,000 samples (past the 1 MiB chunk buffer), each
  // item's samples all equal to its own peak, so a mixed-up range shows.
  const lengths = Array.from({ length: 300 }, (_, i) => (i % 50 === 7 ? 600000 : 1 + ((i * 7919) % 20000)))
  const items = lengths.map((n, i) => new Float32Array(n).fill(i + 1))
  const levels = await bp.addItems(BatchOperationType.MEASURE, items)
  levels.forEach((l: { peak: number; mean: number }, i: number) => assert.deepEqual([l.peak, l.mean], [i + 1, i + 1], `item ${i}`))
  // A hole is told apart from an undefined item, and nothing is queued.
  // eslint-disable-next-line no-sparse-arrays
  assert.throws(() => bp.addItems(BatchOperationType.MEASURE, [Float32Array.of(1), , Float32Array.of(2)]), { name: 'TypeError', message: /data\[1\] must be an item; got a hole/ })
  assert.throws(() => bp.addItems(BatchOperationType.MEASURE, [Float32Array.of(1), undefined]), { name: 'TypeError', message: /data\[1\] of MEASURE must be a Float32Array.*got undefined/ })
  assert.equal(bp.getStats().queued, 0)
  // The caller may change its arrays as soon as the call returns.
  const pending = bp.addItems(BatchOperationType.MEASURE, items)
  items.forEach((a) => a.fill(-1))
  ;(await pending).forEach((l: { peak: number }, i: number) => assert.equal(l.peak, i + 1))
  await bp.close()
})

test('results of concurrent addItems calls, of both number kinds and of single items land in their own slots', async () => {
  const bp = new BatchProcessor({ threads: 2 })
  const clip = (v: number) => new Float32Array(400).fill(v)
  const n = 700
  const progressed: number[] = []
  const [plain, analysed, withProgress, ...singles] = await Promise.all([
    bp.addItems(BatchOperationType.MEASURE, Array.from({ length: n }, (_, i) => clip(i + 1))),
    bp.addItems(BatchOperationType.ANALYZE, Array.from({ length: n }, (_, i) => ({ audio: clip((i + 1) / n), sampleRate: 16000 }))),
    // Members with a callback are kept apart from plain ones.
    bp.addItems(BatchOperationType.MEASURE, Array.from({ length: n }, (_, i) => clip(-(i + 1))), { onProgress: (p: { progress: number }) => progressed.push(p.progress) }),
    ...Array.from({ length: 50 }, (_, i) => bp.addItem(BatchOperationType.MEASURE, clip(1000 + i))),
  ])
  plain.forEach((l: { peak: number; mean: number }, i: number) => assert.deepEqual([l.peak, l.mean], [i + 1, i + 1], `plain ${i}`))
  analysed.forEach((a: { peak: number }, i: number) => assert.ok(Math.abs(a.peak - (i + 1) / n) < 1e-6, `analysed ${i}`))
  withProgress.forEach((l: { peak: number; mean: number }, i: number) => assert.deepEqual([l.peak, l.mean], [i + 1, -(i + 1)], `with progress ${i}`))
  singles.forEach((l: { peak: number }, i: number) => assert.equal(l.peak, 1000 + i, `single ${i}`))
  assert.ok(progressed.filter((p) => p === 1).length === n, 'every member with a callback heard it finish')
  await bp.close()
})

test('EXTRACT_FEATURES items with different feature sets in one call each get their own features', async () => {
  const bp = new BatchProcessor({ threads: 2, maxBatchSize: 4, featureOptions: speech })
  const sets: FeatureName[][] = [['rms'], ['mfcc', 'zcr'], ['logMel'], ['spectralCentroid', 'logMel', 'rms']]
  const clips = Array.from({ length: 24 }, (_, i) => ({ audio: tone(4000 + 160 * i), options: { features: sets[i % sets.length] } }))
  const results = (await bp.addItems(BatchOperationType.EXTRACT_FEATURES, clips)) as ExtractedFeatures[]
  results.forEach((got, i) => {
    const want = extractFeatures(clips[i].audio, { ...speech, features: sets[i % sets.length] })
    assert.deepEqual(Object.keys(got), Object.keys(want), `clip ${i}`)
    assert.deepEqual(got, want, `clip ${i}`)
  })
  await bp.close()
})

test('results of one EXTRACT_FEATURES batch share its buffer yet stay apart: writing one leaves the others, transferring one never detaches them', async () => {
  const bp = new BatchProcessor({ threads: 2, maxBatchSize: 8, featureOptions: speech });
  const clips = Array.from({ length: 8 }, (_, i) => tone(16000, 300 + 40 * i));
  const results = (await bp.addItems(BatchOperationType.EXTRACT_FEATURES, clips)) as ExtractedFeatures[];
  const wanted = clips.map((c) => extractFeatures(c, speech));
  results.forEach((got, i) => assert.deepEqual(got, wanted[i], `clip ${i}`));
  const buffers = new Set(results.map((r) => r.logMel!.data.buffer));
  assert.ok(buffers.size < results.length, `eight clips in ${buffers.size} buffers`);
  results[0].logMel!.data.fill(Number.NaN);
  results[0].mfcc!.data.fill(Number.NaN);
  const { port1, port2 } = new MessageChannel();
  const moved = results[2].mfcc!.data;
  try {
    port1.postMessage(moved, [moved.buffer]);
  } catch (err) {
    // Node 21 and later refuse to transfer an untransferable buffer.
    assert.equal((err as Error).name, 'DataCloneError');
  }
  port1.close();
  port2.close();
  assert.deepEqual(results[2], wanted[2], 'the transferred result kept its values');
  results.slice(1).forEach((got, k) => assert.deepEqual(got, wanted[k + 1], `clip ${k + 1} after writing clip 0 and moving clip 2`));
  await bp.close();
});

test('native EXTRACT_FEATURES matches extractFeatures; ANALYZE and MEASURE summarise clips', async () => {
  const bp = new BatchProcessor({ threads: 2 });
  const clip = tone(16000);
  const viaBatch = (await bp.addItem(BatchOperationType.EXTRACT_FEATURES, { audio: clip, options: speech })) as ExtractedFeatures;
  const direct = extractFeatures(clip, speech);
  assert.deepEqual(viaBatch.mfcc!.data, direct.mfcc!.data);
  assert.equal(viaBatch.logMel!.frames, 101);
  const analysis = await bp.addItem(BatchOperationType.ANALYZE, { audio: clip, sampleRate: 16000 });
  assert.equal(analysis.duration, 1);
  assert.ok(Math.abs(analysis.peak - 0.5) < 1e-3);
  assert.ok(Math.abs(analysis.rmsDb - 20 * Math.log10(0.5 / Math.SQRT2)) < 0.1);
  assert.ok(Math.abs(analysis.spectralCentroidMean - 440) < 80, String(analysis.spectralCentroidMean));
  assert.equal(analysis.silenceRatio, 0);
  assert.deepEqual(Object.keys(analysis), ['duration', 'peak', 'peakDb', 'rms', 'rmsDb', 'silenceRatio', 'spectralCentroidMean', 'zeroCrossingRate']);
  const level = await bp.addItem(BatchOperationType.MEASURE, Float32Array.from([1, -3, 2, 0]));
  assert.deepEqual(level, { peak: 3, rms: Math.sqrt(14 / 4), mean: 0 });
  const many = await bp.addItems(BatchOperationType.MEASURE, [Float32Array.of(1), Float32Array.of(-2), Float32Array.of(4)]);
  assert.deepEqual(many.map((l: { peak: number }) => l.peak), [1, 2, 4]);
  assert.deepEqual(await bp.addItems(BatchOperationType.MEASURE, []), []);
  await bp.close();
});

test('JS processors get batches of similar items with metadata and a resource strategy', async () => {
  // Each key's three items fill a batch, which starts at once: no batch
  // depends on items arriving within a short wait.
  const bp = new BatchProcessor({ maxBatchSize: 3, maxWaitMs: 60_000 });
  const seen: BatchItem[][] = [];
  bp.registerProcessor(BatchOperationType.PROCESS, async (items, strategy) => {
    seen.push(items);
    assert.equal(strategy.batchSize, items.length);
    assert.equal(strategy.device, 'host');
    return items.map((item) => `${item.metadata as string}:${(item.data as number[]).length}`);
  });
  const results = await Promise.all(
    [1, 2, 3, 4, 5, 6].map((i) => bp.addItem(BatchOperationType.PROCESS, new Array(i % 2 ? 10 : 1000).fill(0), { metadata: `m${i}`, similarityKey: i % 2 ? 'short' : 'long' })),
  );
  assert.deepEqual(results, ['m1:10', 'm2:1000', 'm3:10', 'm4:1000', 'm5:10', 'm6:1000']);
  for (const batch of seen) {
    const keys = new Set(batch.map((item) => (item.data as number[]).length));
    assert.equal(keys.size, 1, 'a batch holds similar items only');
  }
  assert.deepEqual(seen.map((batch) => batch.length), [3, 3], 'items were batched');
  const stats = bp.getStats();
  assert.equal(stats.completed, 6);
  assert.ok(stats.averageBatchSize > 1);
  assert.ok(stats.waitLatency.p99 >= stats.waitLatency.p50);

  // Items of one addItems call carry its metadata and signal to the processor.
  const controller = new AbortController();
  const grouped: BatchItem[] = [];
  bp.registerProcessor('GROUPED', (items) => {
    grouped.push(...items);
    return items.map((item) => item.data);
  });
  assert.deepEqual(await bp.addItems('GROUPED', [1, 2, 3], { metadata: 'call', signal: controller.signal }), [1, 2, 3]);
  assert.equal(grouped.length, 3);
  for (const item of grouped) {
    assert.equal(item.metadata, 'call');
    assert.equal(item.signal, controller.signal);
  }
  await bp.close();
});

test('a processor that throws, rejects, returns the wrong length or a non-array fails only its batch', async () => {
  const bp = new BatchProcessor({ maxBatchSize: 1 });
  const cause = new Error('model exploded');
  bp.registerProcessor('THROWS', () => {
    throw cause;
  });
  bp.registerProcessor('REJECTS', async () => Promise.reject(new Error('gpu lost')));
  bp.registerProcessor('SHORT', async () => []);
  bp.registerProcessor('NOT_ARRAY', () => 42 as unknown as unknown[]);
  bp.registerProcessor('OK', (items) => items.map(() => 'fine'));
  bp.registerProcessor('BAD_PROGRESS', (items) => {
    items[0].reportProgress(NaN);
    return ['unreachable'];
  });
  const thrown = await rejection(bp.addItem('THROWS', 1));
  assert.equal(thrown.code, 'E_PROCESSOR_FAILED');
  assert.equal(thrown.cause, cause);
  assert.match((await rejection(bp.addItem('REJECTS', 1))).message, /gpu lost/);
  assert.equal((await rejection(bp.addItem('SHORT', 1))).code, 'E_PROCESSOR_RESULT');
  assert.equal((await rejection(bp.addItem('NOT_ARRAY', 1))).code, 'E_PROCESSOR_RESULT');
  const badProgress = await rejection(bp.addItem('BAD_PROGRESS', 1));
  assert.equal(badProgress.code, 'E_PROCESSOR_FAILED');
  assert.ok(badProgress.cause instanceof RangeError, 'reportProgress(NaN) throws a RangeError');
  assert.equal(await bp.addItem('OK', 1), 'fine', 'the processor keeps serving');
  assert.equal(bp.getStats().failed, 5);
  await bp.close();
});

test('a processor may return promises among its results: each item settles with its own, and stats count each as it ended', async () => {
  const bp = new BatchProcessor({ maxBatchSize: 4 });
  bp.registerProcessor('MIXED', (items) => items.map((item) => (item.data === 2 ? Promise.reject(new Error('item 2 failed')) : Promise.resolve(`ok ${String(item.data)}`))));
  const outcomes = await Promise.allSettled([1, 2, 3].map((i) => bp.addItem<string>('MIXED', i)));
  assert.deepEqual(outcomes.map((o) => o.status), ['fulfilled', 'rejected', 'fulfilled']);
  assert.equal((outcomes[0] as PromiseFulfilledResult<string>).value, 'ok 1');
  assert.match(String((outcomes[1] as PromiseRejectedResult).reason.message), /item 2 failed/);
  const stats = bp.getStats();
  assert.equal(stats.completed, 2);
  assert.equal(stats.failed, 1, 'a rejected result is not counted as completed');
  await bp.close();
});

test('bad input: unknown type, wrong data, bad priority, bad options', async () => {
  const bp = new BatchProcessor();
  assert.equal((await rejection(bp.addItem('NOPE', 1))).code, 'E_NO_PROCESSOR');
  assert.equal((await rejection(bp.addItem(BatchOperationType.PROCESS, 1))).code, 'E_NO_PROCESSOR');
  assert.throws(() => bp.addItem(BatchOperationType.EXTRACT_FEATURES, [1, 2, 3]), TypeError);
  assert.throws(() => bp.addItem(BatchOperationType.ANALYZE, new Float64Array(4)), TypeError);
  assert.throws(() => bp.addItems(BatchOperationType.ANALYZE, [new Float32Array(4), 'x']), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE', message: /^data\[1\] of ANALYZE must be a Float32Array/ });
  assert.throws(() => bp.addItems(BatchOperationType.ANALYZE, 'x' as unknown as unknown[]), TypeError);
  const partWay = [...Array.from({ length: 150 }, () => tone(1600)), 'x'];
  assert.throws(() => bp.addItems(BatchOperationType.ANALYZE, partWay), /data\[150\]/, 'items read before the bad one are taken back');
  await bp.onIdle();
  assert.throws(() => bp.addItem(BatchOperationType.ANALYZE, tone(100), { priority: 11 }), RangeError);
  assert.throws(() => bp.addItem(BatchOperationType.ANALYZE, tone(100), { priority: 'urgent' as 'high' }), RangeError);
  assert.throws(() => bp.addItem(BatchOperationType.ANALYZE, tone(100), { signal: {} as AbortSignal }), TypeError);
  assert.throws(() => bp.addItem(BatchOperationType.EXTRACT_FEATURES, { audio: tone(100), options: { sampleRate: 16000, nFft: 0 } }), /nFft/);
  const empty = await rejection(bp.addItem(BatchOperationType.EXTRACT_FEATURES, new Float32Array(0)));
  assert.ok(empty instanceof RangeError && empty.code === 'E_EMPTY_AUDIO');
  const nan = await rejection(bp.addItem(BatchOperationType.ANALYZE, Float32Array.of(0, NaN)));
  assert.equal(nan.code, 'E_NOT_FINITE');
  assert.equal((await rejection(bp.addItem(BatchOperationType.MEASURE, new Float32Array(0)))).code, 'E_EMPTY_AUDIO');
  const measuredNaN = await rejection(bp.addItem(BatchOperationType.MEASURE, Float32Array.of(1, 2, Infinity)));
  assert.ok(measuredNaN instanceof RangeError && measuredNaN.code === 'E_NOT_FINITE' && /2/.test(measuredNaN.message));
  assert.equal((await bp.addItems(BatchOperationType.MEASURE, Array.from({ length: 100000 }, () => Float32Array.of(1)))).length, 100000, 'a large call');
  assert.throws(() => new BatchProcessor({ maxBatchSize: 0 }), RangeError);
  assert.throws(() => new BatchProcessor({ threads: 1.5 }), RangeError);
  assert.throws(() => new BatchProcessor({ batchTimeoutMs: -1 }), RangeError);
  assert.throws(() => new BatchProcessor({ queueFullBehavior: 'drop' as 'wait' }), RangeError);
  assert.throws(() => new BatchProcessor({ memoryManager: {} as GAMAMemoryManager }), TypeError);
  assert.throws(() => bp.registerProcessor('X', 'nope' as unknown as () => unknown[]), TypeError);
  await bp.close();
});

/** A JS processor whose batches stay pending until `release()`: with
 * `maxConcurrentBatches: 1` nothing else starts meanwhile, so items added
 * while it holds are provably queued, whatever the machine's load. */
function holdingProcessor(bp: BatchProcessor, type = 'HOLD') {
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  let started!: () => void;
  const running = new Promise<void>((resolve) => (started = resolve));
  bp.registerProcessor(type, async (items) => {
    started();
    await held;
    return items.map(() => 'held');
  });
  return { running, release: () => release() };
}

test('a critical item overtakes queued low-priority work', async () => {
  const bp = new BatchProcessor({ threads: 1, maxConcurrentBatches: 1, maxBatchSize: 4 });
  const order: string[] = [];
  const clip = tone(16000);
  const gate = holdingProcessor(bp);
  const first = bp.addItem('HOLD', 0).then(() => order.push('first'));
  await gate.running;
  const low = Array.from({ length: 40 }, (_, i) => bp.addItem(BatchOperationType.ANALYZE, clip, { priority: 'low' }).then(() => order.push(`low${i}`)));
  const critical = bp.addItem(BatchOperationType.ANALYZE, clip, { priority: 'critical' }).then(() => order.push('critical'));
  gate.release();
  await Promise.all([first, critical, ...low]);
  assert.equal(order[0], 'first');
  assert.equal(order[1], 'critical', order.slice(0, 4).join(','));
  await bp.close();
});

test('cancellation: an AbortSignal or cancel(id) removes a queued item and stops a running native one', async () => {
  const bp = new BatchProcessor({ threads: 1, maxConcurrentBatches: 1, maxBatchSize: 1 });
  const progress: ItemProgress[] = [];
  const running = new AbortController();
  let midway: () => void;
  const reachedMidway = new Promise<void>((resolve) => (midway = resolve));
  // About a second of work (600 s of audio, hop 16): far longer than the
  // moments between the progress report and the abort below.
  const long = bp.addItem(
    BatchOperationType.EXTRACT_FEATURES,
    { audio: tone(16000 * 600), options: slow },
    {
      signal: running.signal,
      onProgress: (p) => {
        progress.push(p);
        if (p.stage === 'running' && p.progress > 0) midway();
      },
    },
  );
  const queued = new AbortController();
  const waiting = bp.addItem(BatchOperationType.ANALYZE, tone(16000), { signal: queued.signal });
  const named = bp.addItem(BatchOperationType.ANALYZE, tone(16000), { id: 'clip-7' });
  const outcomes = [long, waiting, named].map((p) => rejection(p));
  assert.throws(() => bp.addItem(BatchOperationType.ANALYZE, tone(16), { id: 'clip-7' }), /already pending/);
  queued.abort();
  assert.equal(bp.cancel('clip-7'), true);
  assert.equal(bp.cancel('clip-7'), false);
  await reachedMidway;
  running.abort();
  for (const err of await Promise.all(outcomes)) {
    assert.equal(err.name, 'AbortError');
    assert.equal(err.code, 'ABORT_ERR');
  }
  assert.deepEqual(progress[0], { stage: 'queued', progress: 0 });
  assert.ok(progress.some((p) => p.stage === 'running' && p.progress > 0 && p.progress < 1), 'fractional progress from inside the extraction');
  assert.equal(progress.at(-1)!.stage, 'done');
  const aborted = new AbortController();
  aborted.abort();
  assert.equal((await rejection(bp.addItem(BatchOperationType.ANALYZE, tone(16), { signal: aborted.signal }))).name, 'AbortError');
  assert.equal(bp.getStats().cancelled, 3);
  assert.equal(await bp.addItem(BatchOperationType.MEASURE, Float32Array.of(2)).then((l: { peak: number }) => l.peak), 2, 'still serving');
  await bp.close();
});

test('one AbortSignal cancels every item given it through a single listener, removed once nothing needs it', async () => {
  const bp = new BatchProcessor({ threads: 1, maxConcurrentBatches: 1, maxBatchSize: 1 });
  const gate = holdingProcessor(bp);
  const first = bp.addItem('HOLD', 0);
  await gate.running;
  const warnings: Error[] = [];
  const onWarning = (w: Error) => warnings.push(w);
  process.on('warning', onWarning);
  const controller = new AbortController();
  let added = 0;
  let removed = 0;
  const add = controller.signal.addEventListener.bind(controller.signal);
  const remove = controller.signal.removeEventListener.bind(controller.signal);
  controller.signal.addEventListener = ((...args: Parameters<typeof add>) => {
    added++;
    return add(...args);
  }) as typeof add;
  controller.signal.removeEventListener = ((...args: Parameters<typeof remove>) => {
    removed++;
    return remove(...args);
  }) as typeof remove;
  const clip = tone(1600);
  const all = bp.addItems(BatchOperationType.EXTRACT_FEATURES, Array.from({ length: 20 }, () => clip), { signal: controller.signal });
  const singles = Array.from({ length: 15 }, () => bp.addItem(BatchOperationType.ANALYZE, clip, { signal: controller.signal }));
  const outcomes = [all, ...singles].map((p) => rejection(p));
  assert.equal(added, 1, 'one listener for 35 items');
  controller.abort();
  for (const err of await Promise.all(outcomes)) assert.equal(err.name, 'AbortError');
  gate.release();
  assert.equal(await first, 'held');
  await bp.onIdle();
  assert.equal(bp.getStats().cancelled, 35, 'every queued item was cancelled');
  assert.equal(removed, 1, 'the listener is removed once');

  // Items that complete release the listener too, and a later item adds it again.
  const again = new AbortController();
  const onAbort: unknown[] = [];
  const addAgain = again.signal.addEventListener.bind(again.signal);
  again.signal.addEventListener = ((...args: Parameters<typeof addAgain>) => {
    onAbort.push(args[1]);
    return addAgain(...args);
  }) as typeof addAgain;
  const levels = await Promise.all(Array.from({ length: 12 }, () => bp.addItem(BatchOperationType.MEASURE, Float32Array.of(1), { signal: again.signal })));
  assert.equal(levels.length, 12);
  assert.equal(onAbort.length, 1);
  await bp.addItem(BatchOperationType.MEASURE, Float32Array.of(1), { signal: again.signal });
  assert.equal(onAbort.length, 2, 'a new listener after the last one was removed');
  await new Promise((resolve) => setImmediate(resolve));
  process.off('warning', onWarning);
  assert.deepEqual(warnings.map((w) => w.name), [], 'no MaxListenersExceededWarning');
  await bp.close();
});

test('batchTimeoutMs rejects a batch that runs too long with E_TIMEOUT; a late result is ignored', async () => {
  const bp = new BatchProcessor({ batchTimeoutMs: 50 });
  // SLOW answers only once the test has seen its timeout: its result is late by construction.
  let answer!: (value: string[]) => void;
  const late = new Promise<string[]>((resolve) => (answer = resolve));
  bp.registerProcessor('SLOW', () => late);
  bp.registerProcessor('NEVER', () => new Promise<never[]>(() => {}));
  assert.equal((await rejection(bp.addItem('SLOW', 1))).code, 'E_TIMEOUT');
  answer(['late']);
  await late;
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(bp.getStats().completed, 0, 'the late result is ignored');
  assert.equal((await rejection(bp.addItem('NEVER', 1))).code, 'E_TIMEOUT');
  const native = await rejection(bp.addItem(BatchOperationType.EXTRACT_FEATURES, { audio: tone(16000 * 600), options: slow }));
  assert.equal(native.code, 'E_TIMEOUT');
  const stats = bp.getStats();
  assert.equal(stats.failed, 3);
  assert.equal(stats.completed, 0);
  await bp.close();
});

test('backpressure: a full queue rejects with E_QUEUE_FULL, or waits when asked', async () => {
  const blocker = () => new Promise<unknown[]>((resolve) => setTimeout(() => resolve(['x']), 30));
  const strict = new BatchProcessor({ maxQueueSize: 2, maxConcurrentBatches: 1, maxBatchSize: 1 });
  strict.registerProcessor('P', blocker);
  const accepted = [strict.addItem('P', 1), strict.addItem('P', 2), strict.addItem('P', 3)];
  assert.equal((await rejection(strict.addItem('P', 4))).code, 'E_QUEUE_FULL');
  await Promise.all(accepted);
  const patient = new BatchProcessor({ maxQueueSize: 2, maxConcurrentBatches: 1, maxBatchSize: 1, queueFullBehavior: 'wait' });
  patient.registerProcessor('P', blocker);
  const all = await Promise.all([1, 2, 3, 4, 5, 6].map((i) => patient.addItem('P', i)));
  assert.equal(all.length, 6);
  await Promise.all([strict.close(), patient.close()]);
});

test('onIdle, processor-wide progress, close drains, close({ force }) rejects with E_CLOSED', async () => {
  const bp = new BatchProcessor({ maxBatchSize: 2 });
  bp.registerProcessor('P', (items) => new Promise<unknown[]>((resolve) => setTimeout(() => resolve(items.map((i) => i.data)), 10)));
  const counts: number[] = [];
  const off = bp.onProgress((c) => counts.push(c.completed));
  const done = bp.addItems('P', [1, 2, 3, 4]);
  await bp.onIdle();
  assert.deepEqual(await done, [1, 2, 3, 4]);
  assert.ok(counts.length > 0 && counts.at(-1) === 4);
  off();
  await bp.drain();
  const late = [bp.addItem('P', 5), bp.addItem('P', 6)];
  await bp.close();
  assert.deepEqual(await Promise.all(late), [5, 6], 'close drains first');
  assert.equal((await rejection(bp.addItem('P', 7))).code, 'E_CLOSED');

  const forced = new BatchProcessor({ maxBatchSize: 1, maxConcurrentBatches: 2, threads: 1 });
  forced.registerProcessor('P', () => new Promise<never[]>(() => {}));
  let running!: () => void;
  const nativeRunning = new Promise<void>((resolve) => (running = resolve));
  const native = forced.addItem(BatchOperationType.EXTRACT_FEATURES, { audio: tone(16000 * 600), options: slow }, {
    onProgress: (p) => p.stage === 'running' && p.progress > 0 && running(),
  });
  const pending = [native, forced.addItem('P', 1), forced.addItem('P', 2), forced.addItems('P', [3, 4])].map((p) => rejection(p));
  await nativeRunning;
  await forced.close({ force: true });
  for (const err of await Promise.all(pending)) assert.equal(err.code, 'E_CLOSED', 'queued, running JS and running native items');
});

test('with a feature cache, EXTRACT_FEATURES results are stored and reused under keyFor(audio, options)', async () => {
  const cache = new AudioFeatureCache({ maxMemory: '64MB' });
  const bp = new BatchProcessor({ featureCache: cache, featureOptions: speech });
  const clip = tone(16000, 220);
  const first = (await bp.addItem(BatchOperationType.EXTRACT_FEATURES, clip)) as ExtractedFeatures;
  const key = AudioFeatureCache.keyFor(clip, speech);
  const stored = cache.get(`${key}:mfcc`) as Float32Array;
  assert.deepEqual(stored, first.mfcc!.data);
  const hitsBefore = cache.getStats().hits;
  const second = (await bp.addItem(BatchOperationType.EXTRACT_FEATURES, clip)) as ExtractedFeatures;
  assert.deepEqual(second.mfcc!.data, first.mfcc!.data);
  assert.equal(cache.getStats().hits - hitsBefore, 2, 'logMel and mfcc came from the cache');
  await bp.close();
});

test('per-item sampleRate and options are laid over featureOptions, derive their defaults again, and key the cache', async () => {
  const cache = new AudioFeatureCache({ maxMemory: '64MB' });
  const bp = new BatchProcessor({ featureCache: cache, featureOptions: speech });
  const clip = tone(44100, 1000, 44100);
  const cd = (await bp.addItem(BatchOperationType.EXTRACT_FEATURES, { audio: clip, sampleRate: 44100 })) as ExtractedFeatures;
  assert.deepEqual(cd.logMel!.data, extractFeatures(clip, { ...speech, sampleRate: 44100 }).logMel!.data, 'fmax follows the item\'s rate');
  const phone = tone(8000, 440, 8000);
  const narrow = (await bp.addItem(BatchOperationType.EXTRACT_FEATURES, { audio: phone, sampleRate: 8000 })) as ExtractedFeatures;
  assert.deepEqual(narrow.mfcc!.data, extractFeatures(phone, { ...speech, sampleRate: 8000 }).mfcc!.data, 'no RangeError about an fmax never given');
  const plain = (await bp.addItem(BatchOperationType.EXTRACT_FEATURES, clip)) as ExtractedFeatures;
  assert.deepEqual(plain.logMel!.data, extractFeatures(clip, speech).logMel!.data, 'the 16 kHz item is not served the 44.1 kHz features');
  assert.ok(cache.has(`${AudioFeatureCache.keyFor(clip, { ...speech, sampleRate: 44100 })}:logMel`));
  assert.ok(cache.has(`${AudioFeatureCache.keyFor(clip, speech)}:logMel`));
  const wide = (await bp.addItem(BatchOperationType.EXTRACT_FEATURES, { audio: clip, options: { nFft: 1024, sampleRate: 44100 } })) as ExtractedFeatures;
  assert.deepEqual(wide.mfcc!.data, extractFeatures(clip, { ...speech, nFft: 1024, sampleRate: 44100 }).mfcc!.data);
  const summary = await bp.addItem(BatchOperationType.ANALYZE, { audio: phone, sampleRate: 8000 });
  assert.equal(summary.duration, 1);
  const derived = new BatchProcessor({ featureOptions: { sampleRate: 16000, nFft: 512 } });
  const hop = (await derived.addItem(BatchOperationType.EXTRACT_FEATURES, { audio: tone(16000), options: { nFft: 1024 } })) as ExtractedFeatures;
  assert.equal(hop.mfcc!.frames, 1 + Math.floor(16000 / 256), 'hopLength = nFft / 4 of the item\'s nFft');
  await assert.rejects(async () => derived.addItem(BatchOperationType.EXTRACT_FEATURES, { audio: tone(100), options: { fmax: 9000 } }), /data\.fmax/);
  await Promise.all([bp.close(), derived.close()]);
});

test('with a memory manager, batches reserve memory and an item that can never fit rejects with E_BUDGET', async () => {
  const memory = new GAMAMemoryManager({ maxMemory: '16MiB', reservedMemory: 0, device: 'cpu' });
  const bp = new BatchProcessor({ memoryManager: memory, featureOptions: speech });
  const results = await bp.addItems(BatchOperationType.EXTRACT_FEATURES, Array.from({ length: 12 }, () => tone(16000)));
  assert.equal(results.length, 12);
  const usage = memory.getMemoryUsage();
  assert.ok(usage.byOperation.EXTRACT_FEATURES.peak > 0, 'batches reserved memory');
  assert.equal(usage.used, 0, 'and gave it back');
  const huge = await rejection(bp.addItem(BatchOperationType.EXTRACT_FEATURES, tone(16000 * 600)));
  assert.equal(huge.code, 'E_BUDGET');
  await bp.close();
});

test('an idle processor does not keep Node alive, and pending work does', () => {
  const script = `
    const { BatchProcessor } = require(${JSON.stringify(require.resolve('../index.js'))});
    const idle = new BatchProcessor();
    const bp = new BatchProcessor();
    bp.registerProcessor('P', (items) => new Promise((r) => setTimeout(() => r(items.map(() => 'ok')), 50)));
    setTimeout(() => {}, 0);
    new BatchProcessor().addItem('P', 1).catch(() => {});
    bp.addItem('P', 1).then((v) => console.log('settled', v));
  `;
  const run = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 10000 });
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /settled ok/);
});
