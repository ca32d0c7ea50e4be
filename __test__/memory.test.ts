import { test } from 'node:test';
import { inspect } from 'node:util';
import assert from 'node:assert/strict';

import { GAMAMemoryManager, MemoryBlock, PressureEvent, cudaAvailable } from '../index.js';

const gpuTests = process.env.GAMA_TEST_GPU === '1';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

test('host blocks give a zero-copy view and return to the pool on the last release', () => {
  const mm = new GAMAMemoryManager({ maxMemory: '64MiB', reservedMemory: 0, device: 'cpu' });
  const block = mm.allocate('4MiB', { operation: 'mel', tag: 'clip-1' });
  assert.equal(block.bytes, 4 * 1024 * 1024);
  assert.equal(block.device, 'host');
  assert.equal(block.operation, 'mel');
  assert.equal(block.tag, 'clip-1');
  assert.equal(block.refCount, 1);
  const view = block.view() as Float32Array;
  assert.ok(view instanceof Float32Array);
  assert.equal(view.length, 1024 * 1024);
  view[0] = 1.5;
  view[view.length - 1] = -2;
  const bytes = block.view('uint8') as Uint8Array;
  assert.equal(bytes.length, 4 * 1024 * 1024);
  assert.deepEqual(Array.from(new Float32Array(bytes.buffer, 0, 1)), [1.5], 'same memory');
  const out = new Float32Array(2);
  block.copyTo(out, 4 * 1024 * 1024 - 8);
  assert.equal(out[1], -2);

  assert.equal(block.retain(), 2);
  assert.equal(block.release(), 1);
  assert.equal(view.length, 1024 * 1024, 'still held');
  let usage = mm.getMemoryUsage();
  assert.equal(usage.used, 4 * 1024 * 1024);
  assert.equal(usage.byOperation.mel.current, 4 * 1024 * 1024);
  assert.equal(usage.gpu, null);

  assert.equal(block.release(), 0);
  assert.equal(block.released, true);
  assert.equal(view.length, 0, 'the view is detached before the memory is reused');
  assert.equal(bytes.length, 0);
  usage = mm.getMemoryUsage();
  assert.equal(usage.used, 0);
  assert.equal(usage.host.pooled, 4 * 1024 * 1024);

  const again = mm.allocate(4 * 1024 * 1024);
  const stats = mm.getStats();
  assert.equal(stats.hostPool.hits, 1);
  assert.equal(stats.hostPool.misses, 1);
  again.release();
});

test('double release and use after release throw E_RELEASED; refCount never goes below zero', () => {
  const mm = new GAMAMemoryManager({ maxMemory: '16MiB', device: 'cpu' });
  const block = mm.allocate(1024);
  block.release();
  for (const use of [() => block.release(), () => block.retain(), () => block.view(), () => block.copyFrom(new Float32Array(1)), () => block.copyTo(new Float32Array(1))]) {
    assert.equal(codeOf(use), 'E_RELEASED');
  }
  assert.equal(block.refCount, 0);
});

test('over budget: allocate throws E_BUDGET naming the request, tryAllocate returns null', () => {
  const mm = new GAMAMemoryManager({ maxMemory: '8MiB', reservedMemory: '2MiB', device: 'cpu' });
  const held = mm.allocate('4MiB', { operation: 'model' });
  assert.throws(
    () => mm.allocate('4MiB', { operation: 'decode' }),
    (err: Error & { code?: string }) =>
      err.code === 'E_BUDGET' && /4194304/.test(err.message) && /2097152/.test(err.message) && /decode/.test(err.message),
  );
  assert.equal(mm.tryAllocate('4MiB'), null);
  assert.equal(mm.getStats().failures, 2);
  held.release();
  const ok = mm.tryAllocate('4MiB');
  assert.ok(ok instanceof MemoryBlock);
  ok.release();
  assert.equal(codeOf(() => mm.allocate('1GB')), 'E_BUDGET');
});

test('bad sizes, devices, strategies and options get clear errors', () => {
  const mm = new GAMAMemoryManager({ maxMemory: '16MiB', device: 'cpu' });
  for (const size of [0, -1, NaN, Infinity, '4XB', '']) {
    assert.throws(() => mm.allocate(size as number), RangeError, String(size));
  }
  assert.throws(() => mm.allocate(16, { device: 'tpu' as 'host' }), RangeError);
  assert.throws(() => mm.allocate({} as unknown as number), TypeError);
  assert.throws(() => new GAMAMemoryManager({ device: 'tpu' as 'cpu' }), RangeError);
  assert.throws(() => new GAMAMemoryManager({ allocationStrategy: 'random' as 'buddy' }), /allocationStrategy/);
  assert.throws(() => new GAMAMemoryManager({ maxMemory: '4XB' }), /maxMemory/);
  assert.throws(() => new GAMAMemoryManager({ maxMemory: '1GB', reservedMemory: '2GB' }), /reservedMemory/);
  assert.throws(() => new GAMAMemoryManager({ optimizationThreshold: 120 }), /optimizationThreshold/);
  assert.throws(() => new GAMAMemoryManager({ alignment: 100 }), /power of two/);
  const block = mm.allocate(16);
  assert.throws(() => block.view('float16' as 'float32'), /float32/);
  assert.throws(() => block.copyFrom([1, 2, 3] as unknown as Float32Array), TypeError);
  assert.throws(() => block.copyFrom(new Float32Array(5)), RangeError, 'past the end');
  assert.throws(() => block.copyFrom(new Float32Array(1), -4), RangeError);
  assert.throws(() => mm.recommendBatchSize('x', 10, { min: 8, max: 2 }), RangeError);
  block.release();
});

test('without a GPU, auto reports gpu: null, cuda throws E_NO_GPU, gpu blocks are refused', { skip: cudaAvailable() }, () => {
  const mm = new GAMAMemoryManager({ maxMemory: '16MiB' });
  assert.equal(mm.hasGpu, false);
  assert.equal(mm.getMemoryUsage().gpu, null);
  assert.equal(mm.getStats().gpuPool, null);
  assert.equal(codeOf(() => new GAMAMemoryManager({ device: 'cuda' })), 'E_NO_GPU');
  assert.equal(codeOf(() => mm.allocate(1024, { device: 'gpu' })), 'E_NO_GPU');
});

test('GPU blocks copy in and out, and trim returns free chunks', { skip: !gpuTests }, () => {
  const mm = new GAMAMemoryManager({ device: 'cuda', gpuChunkSize: '16MiB', allocationStrategy: 'buddy' });
  const usage = mm.getMemoryUsage();
  assert.ok(usage.gpu && usage.gpu.deviceTotal > 0, 'a GPU is reported');
  const block = mm.allocate('1MiB', { device: 'gpu', operation: 'weights' });
  assert.equal(block.device, 'gpu');
  const data = Float32Array.from({ length: 262144 }, (_, i) => i * 0.5);
  block.copyFrom(data);
  const back = new Float32Array(data.length);
  block.copyTo(back);
  assert.deepEqual(back, data);
  assert.equal(codeOf(() => block.view()), 'E_WRONG_DEVICE');
  block.release();
  const plain = mm.allocate(4096, { device: 'gpu' });
  assert.equal(plain.device, 'gpu');
  plain.copyFrom(data.subarray(0, 1024));
  const four = new Float32Array(1024);
  plain.copyTo(four);
  assert.deepEqual(four, data.subarray(0, 1024));
  plain.release();
  assert.equal(mm.trim().gpu, 16 * 1024 * 1024);
});

test('usage, per-operation figures, peak, recommendations and findings', () => {
  const mm = new GAMAMemoryManager({ maxMemory: '10MiB', reservedMemory: 0, optimizationThreshold: 50, device: 'cpu' });
  const a = mm.allocate('4MiB', { operation: 'decoder' });
  const b = mm.allocate('1MiB', { operation: 'mel' });
  const usage = mm.getMemoryUsage();
  assert.equal(usage.total, 10 * 1024 * 1024);
  assert.equal(usage.used, 5 * 1024 * 1024);
  assert.equal(usage.available, 5 * 1024 * 1024);
  assert.equal(usage.percentage, 50);
  assert.ok(usage.system.total > 0 && usage.system.processRss > 0);
  assert.equal(usage.byOperation.decoder.allocations, 1);
  assert.equal(mm.recommendBatchSize('fresh', '256KiB'), 1, 'nothing fits below the threshold: the minimum');
  b.release();
  assert.equal(mm.recommendBatchSize('fresh', 256 * 1024, { max: 100 }), 4);
  assert.equal(mm.recommendBatchSize('decoder', 1024), 1, 'past requests of 4 MB each');
  const findings = mm.getOptimizationOpportunities();
  assert.ok(findings.length > 0);
  for (const f of findings) {
    assert.equal(typeof f.message, 'string');
    assert.ok(f.estimatedSaving >= 0);
  }
  assert.ok(findings.some((f) => f.kind === 'idle-pool-memory'));
  a.release();
  assert.equal(mm.getMemoryUsage().peak, 5 * 1024 * 1024);
  mm.resetPeak();
  assert.equal(mm.getMemoryUsage().peak, 0);
  const trimmed = mm.trim();
  assert.equal(trimmed.host, 5 * 1024 * 1024);
  assert.equal(mm.getMemoryUsage().host.pooled, 0);
});

test('pressure listeners hear the threshold crossed both ways and can be removed', { timeout: 60_000 }, async () => {
  const mm = new GAMAMemoryManager({ maxMemory: '8MiB', reservedMemory: 0, optimizationThreshold: 50, device: 'cpu' });
  /** Events a listener receives, and a wait for the next `n` of them. */
  function recorder() {
    const events: PressureEvent[] = [];
    let waiting: { n: number; resolve: () => void } | undefined;
    const listener = (e: PressureEvent) => {
      events.push(e);
      if (waiting && events.length >= waiting.n) waiting.resolve();
    };
    // Listeners do not keep Node alive: a ref'd timer does while waiting.
    const until = async (n: number) => {
      const alive = setInterval(() => {}, 1000);
      await new Promise<void>((resolve) => {
        if (events.length >= n) resolve();
        else waiting = { n, resolve };
      });
      clearInterval(alive);
    };
    return { events, listener, until };
  }
  const first = recorder();
  const off = mm.onPressure(first.listener);
  const block = mm.allocate('5MiB');
  block.release();
  await first.until(2);
  assert.deepEqual(
    first.events.map((e) => [e.device, e.direction]),
    [
      ['host', 'rising'],
      ['host', 'falling'],
    ],
  );
  assert.ok(first.events[0].percentage >= 50 && first.events[0].threshold === 50);
  off();
  const second = recorder();
  mm.onPressure(second.listener);
  mm.allocate('5MiB').release();
  // Both crossings reached the listener still attached: the removed one,
  // called from the same delivery, would have heard them by now.
  await second.until(2);
  assert.equal(first.events.length, 2, 'removed listeners are not called');
  assert.throws(() => mm.onPressure('nope' as unknown as () => void), TypeError);
});

test('a block dropped without release is reclaimed by the GC and counted as a leak; a live view keeps its memory', async () => {
  const gc = (globalThis as { gc?: () => void }).gc;
  assert.ok(gc, 'tests run with --expose-gc');
  const mm = new GAMAMemoryManager({ maxMemory: '64MiB', reservedMemory: 0, device: 'cpu' });
  let kept: Float32Array;
  (() => {
    mm.allocate(1024 * 1024, { operation: 'forgotten' });
    const b = mm.allocate('1MiB', { operation: 'viewed' });
    kept = b.view() as Float32Array;
    kept.fill(7);
  })();
  for (let i = 0; i < 10 && mm.getStats().leaks < 2; i++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
  const stats = mm.getStats();
  assert.equal(stats.leaks, 2);
  assert.equal(stats.leakedBytes, 2 * 1024 * 1024);
  assert.equal(kept!.length, 262144, 'the view outlives its block');
  assert.ok(kept!.every((v) => v === 7), 'and its memory was not reused');
  assert.equal(mm.getMemoryUsage().byOperation.forgotten.current, 0);
  assert.ok(mm.getOptimizationOpportunities().some((f) => f.kind === 'leaked-blocks'));
});

test('blocks from plain arguments and from checked ones (sizes as strings) are alike, and only blocks pass as blocks', () => {
  const mm = new GAMAMemoryManager({ maxMemory: '1MiB', reservedMemory: 0, device: 'cpu' });
  const plain = mm.allocate(4096, { operation: 'mel', tag: 't', device: 'host' });
  const checked = mm.allocate('4KiB', { operation: 'mel', tag: 't', device: 'cpu' as 'host' });
  for (const block of [plain, checked]) {
    assert.ok(block instanceof MemoryBlock);
    assert.equal(block.constructor.name, 'MemoryBlock');
    assert.deepEqual([block.bytes, block.device, block.operation, block.tag, block.refCount, block.released], [4096, 'host', 'mel', 't', 1, false]);
    assert.deepEqual(Object.keys(block), []);
    assert.match(inspect(block), /^MemoryBlock /);
  }
  assert.equal(mm.getMemoryUsage().byOperation.mel.current, 8192);
  const defaults = mm.allocate(100, null as unknown as undefined);
  assert.deepEqual([defaults.operation, defaults.tag, defaults.device], ['general', null, 'host']);
  assert.equal(mm.allocate(10.7).bytes, 10, 'a fractional size is rounded down, as before');

  // What the plain path leaves to the checks gets their errors.
  assert.throws(() => mm.allocate(64, { operation: 5 as unknown as string }), { code: 'ERR_INVALID_ARG_TYPE', message: /options\.operation must be a string/ });
  assert.throws(() => mm.allocate(64, { tag: {} as unknown as string }), { code: 'ERR_INVALID_ARG_TYPE', message: /options\.tag/ });
  assert.throws(() => mm.allocate(64, { device: 'tpu' as 'host' }), { name: 'RangeError', message: /options\.device/ });
  assert.throws(() => mm.allocate(64, [] as unknown as undefined), { code: 'ERR_INVALID_ARG_TYPE', message: /options must be an object/ });
  assert.throws(() => mm.allocate(2 ** 60), RangeError);
  assert.throws(() => mm.allocate.call({}, 64), TypeError);

  // Over budget with plain arguments.
  assert.equal(codeOf(() => mm.allocate(2 * 1024 * 1024, { operation: 'big' })), 'E_BUDGET');
  assert.equal(mm.tryAllocate(2 * 1024 * 1024), null);
  assert.equal(mm.getStats().failures, 2);
  const after = mm.allocate(64);
  const usage = mm.getMemoryUsage().byOperation;
  assert.ok(usage.general.current > 0 && !usage.big?.current, 'a refused operation does not carry over to the next allocate');
  after.release();

  // The members refuse anything that is not a block.
  const bytes = Object.getOwnPropertyDescriptor(MemoryBlock.prototype, 'bytes')!.get!;
  assert.throws(() => bytes.call({}), { name: 'TypeError', code: 'ERR_INVALID_THIS' });
  assert.throws(() => MemoryBlock.prototype.release.call(Object.create(MemoryBlock.prototype)), { code: 'ERR_INVALID_THIS' });
  assert.throws(() => MemoryBlock.prototype.view.call(null), { code: 'ERR_INVALID_THIS' });
  assert.throws(() => new (MemoryBlock as unknown as new () => MemoryBlock)(), { name: 'TypeError', code: 'ERR_ILLEGAL_CONSTRUCTOR', message: /GAMAMemoryManager#allocate/ });

  for (const block of [plain, checked, defaults]) assert.equal(block.release(), 0);
  assert.equal(mm.getMemoryUsage().byOperation.mel.current, 0);
});

test('released blocks are never counted as leaks, and blocks outlive their manager object', async () => {
  const gc = (globalThis as { gc?: () => void }).gc!;
  const tick = () => new Promise((resolve) => setImmediate(resolve));
  const mm = new GAMAMemoryManager({ maxMemory: '64MiB', reservedMemory: 0, device: 'cpu' });
  for (let i = 0; i < 1000; i++) {
    const block = mm.allocate(1024, { operation: 'loop' });
    if (i % 2) block.retain();
    while (block.release() > 0);
  }
  (() => {
    mm.allocate(2048, { operation: 'marker' });
  })();
  for (let i = 0; i < 10 && mm.getStats().leaks < 1; i++) {
    gc();
    await tick();
  }
  gc();
  await tick();
  assert.equal(mm.getStats().leaks, 1, 'only the block dropped without release');
  assert.equal(mm.getStats().leakedBytes, 2048);
  assert.equal(mm.getMemoryUsage().used, 0);

  let survivor: MemoryBlock;
  (() => {
    survivor = new GAMAMemoryManager({ maxMemory: '1MiB', device: 'cpu' }).allocate(64);
  })();
  gc();
  await tick();
  gc();
  survivor!.copyFrom(Uint8Array.of(1, 2, 3, 4), 8);
  const out = new Uint8Array(4);
  survivor!.copyTo(out, 8);
  assert.deepEqual(Array.from(out), [1, 2, 3, 4]);
  assert.equal(survivor!.release(), 0);
});
