import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import {
  AudioFeatureCache,
  ExtractedFeatures,
  FeatureStream,
  FeatureStreams,
  FrameBlock,
  GAMAMemoryManager,
  PerformanceProfiler,
  extractFeatures,
} from '../index.js';

const options = {
  sampleRate: 16000,
  nFft: 512,
  hopLength: 160,
  nMels: 64,
  nMfcc: 13,
  features: ['logMel', 'mfcc', 'rms', 'zcr', 'spectralCentroid'] as ('logMel' | 'mfcc' | 'rms' | 'zcr' | 'spectralCentroid')[],
  topDb: null,
};

/** Speech-like audio: a gliding tone in noise with silent gaps (deterministic). */
function speech(n: number, seed = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    const gate = Math.floor(i / 3000) % 4 === 3 ? 0 : 1;
    const t = i / 16000;
    out[i] = gate * (0.5 * Math.sin(2 * Math.PI * (200 + 300 * t) * t) + (s / 2 ** 32 - 0.5) * 0.1);
  }
  return out;
}

type Matrix = { data: Float32Array; bins: number };
const NAMES = ['logMel', 'mfcc', 'rms', 'zcr', 'spectralCentroid'] as const;

/** The blocks joined into one array per feature (checking order and gaps). */
function join(blocks: FrameBlock[]): Record<string, Float32Array> & { frames: number } {
  let next = 0;
  const parts: Record<string, Float32Array[]> = {};
  for (const b of blocks) {
    assert.equal(b.firstFrame, next, 'blocks come in order, without gaps');
    next += b.frames;
    for (const name of NAMES) {
      const v = b[name] as Matrix | Float32Array | undefined;
      if (v === undefined) continue;
      (parts[name] ??= []).push(v instanceof Float32Array ? v : v.data);
    }
  }
  const out: Record<string, Float32Array> = {};
  for (const [name, list] of Object.entries(parts)) {
    const all = new Float32Array(list.reduce((n, a) => n + a.length, 0));
    let at = 0;
    for (const a of list) { all.set(a, at); at += a.length; }
    out[name] = all;
  }
  return Object.assign(out, { frames: next });
}

function flat(f: ExtractedFeatures, name: (typeof NAMES)[number]): Float32Array {
  const v = f[name] as Matrix | Float32Array;
  return v instanceof Float32Array ? v : v.data;
}

/** Streams `audio` in `chunk`-sample pushes through onFrames. */
async function streamed(streams: FeatureStreams, id: string, audio: Float32Array, chunk: number, start = {}) {
  const blocks: FrameBlock[] = [];
  const s = streams.start(id, { onFrames: (b) => blocks.push(b), ...start });
  for (let i = 0; i < audio.length; i += chunk) s.push(audio.subarray(i, i + chunk));
  const summary = await s.finalize();
  return { blocks, summary };
}

async function rejection(p: Promise<unknown>): Promise<Error & { code?: string; cause?: unknown; summary?: unknown }> {
  try {
    await p;
  } catch (err) {
    return err as Error & { code?: string };
  }
  assert.fail('expected a rejection');
}

function throwsCode(f: () => unknown, code: string, kind: ErrorConstructor = Error, message?: RegExp) {
  assert.throws(f, (e: Error & { code?: string }) => {
    assert.equal(e.code, code, e.message);
    assert.ok(e instanceof kind, `${e.name}: ${e.message}`);
    if (message) assert.match(e.message, message);
    return true;
  });
}

test('streamed frames equal extractFeatures on the whole audio for any chunking', async () => {
  const streams = new FeatureStreams({ options });
  const audio = speech(16000 + 77, 3);
  const offline = extractFeatures(audio, options);
  for (const chunk of [1, 7, 320, 16000, audio.length]) {
    const { blocks, summary } = await streamed(streams, `u${chunk}`, audio, chunk);
    const got = join(blocks);
    assert.equal(got.frames, offline.logMel!.frames, `chunks of ${chunk}`);
    for (const name of NAMES) assert.deepEqual(got[name], flat(offline, name), `${name}, chunks of ${chunk}`);
    assert.deepEqual(
      { frames: summary.frames, samples: summary.samples, reason: summary.reason, callbackErrors: summary.callbackErrors },
      { frames: offline.logMel!.frames, samples: audio.length, reason: 'finalized', callbackErrors: 0 },
    );
    assert.equal(summary.durationSec, audio.length / 16000);
  }
  // Reflect padding, and per-stream options over the streams' own.
  const reflect = { ...options, padMode: 'reflect' as const, nMels: 40 };
  const { blocks } = await streamed(streams, 'reflect', audio, 333, { options: { padMode: 'reflect', nMels: 40 } });
  assert.deepEqual(join(blocks).logMel, flat(extractFeatures(audio, reflect), 'logMel'));
  await streams.close();
});

test('topDb: "none" leaves logMel unfloored, "running" floors each frame at the loudest so far', async () => {
  const withTop = { ...options, topDb: 30, features: ['logMel'] as 'logMel'[] };
  const audio = speech(24000, 5);
  const raw = flat(extractFeatures(audio, { ...withTop, topDb: null }), 'logMel');
  const none = new FeatureStreams({ options: withTop });
  assert.deepEqual(join((await streamed(none, 'a', audio, 320)).blocks).logMel, raw);
  const running = new FeatureStreams({ options: withTop, topDbReference: 'running' });
  const got = join((await streamed(running, 'a', audio, 320)).blocks).logMel;
  let peak = -Infinity;
  for (let f = 0; f < raw.length / 64; f++) {
    for (let b = 0; b < 64; b++) peak = Math.max(peak, raw[f * 64 + b]);
    for (let b = 0; b < 64; b++) assert.equal(got[f * 64 + b], Math.max(raw[f * 64 + b], Math.fround(peak - 30)), `frame ${f}`);
  }
  await Promise.all([none.close(), running.close()]);
});

test('Int16Array PCM is read as samples / 32768', async () => {
  const streams = new FeatureStreams({ options });
  const pcm = Int16Array.from(speech(8000, 9), (x) => Math.round(x * 20000));
  const floats = Float32Array.from(pcm, (x) => x / 32768);
  const blocks: FrameBlock[] = [];
  const s = streams.start('pcm', { onFrames: (b) => blocks.push(b) });
  for (let i = 0; i < pcm.length; i += 320) assert.equal(s.push(pcm.subarray(i, i + 320)), true);
  await s.finalize();
  assert.deepEqual(join(blocks).logMel, flat(extractFeatures(floats, options), 'logMel'));
  await streams.close();
});

test('for await reads every block; a Readable and a Transform pipe like any Node stream', async () => {
  const streams = new FeatureStreams({ options });
  const audio = speech(20000, 4);
  const offline = flat(extractFeatures(audio, options), 'mfcc');
  const s = streams.start('iter');
  for (let i = 0; i < audio.length; i += 640) s.push(audio.subarray(i, i + 640));
  const done = s.finalize();
  const blocks: FrameBlock[] = [];
  for await (const block of s) blocks.push(block);
  assert.deepEqual(join(blocks).mfcc, offline);
  assert.equal((await done).frames, join(blocks).frames);
  assert.throws(() => s.readable(), { code: 'E_STREAM_CONSUMED' });

  const piped: FrameBlock[] = [];
  const chunks = Array.from({ length: Math.ceil(audio.length / 320) }, (_, i) => audio.subarray(i * 320, (i + 1) * 320));
  await pipeline(
    Readable.from(chunks),
    streams.transform('transform'),
    new Writable({ objectMode: true, write(block, _e, cb) { piped.push(block); cb(); } }),
  );
  assert.deepEqual(join(piped).mfcc, offline);
  await streams.close();
});

test('backpressure: push returns false past highWaterMark until a reader takes frames, then "drain"', async () => {
  const streams = new FeatureStreams({ options, highWaterMark: 50 });
  const s = streams.start('bp');
  // 2 s of audio is 201 frames, far past the mark whether framed yet or not.
  assert.equal(s.push(speech(32000)), false);
  const drained = once(s, 'drain');
  const reader = s.readable({ highWaterMark: 1 });
  let frames = 0;
  reader.on('data', (b: FrameBlock) => { frames += b.frames; });
  await drained;
  assert.equal(s.push(speech(160)), true);
  const ended = once(reader, 'end');
  const summary = await s.finalize();
  await ended;
  assert.equal(frames, summary.frames);
  await streams.close();
});

test('limits and bad input get clear errors; a refused chunk leaves the stream usable', async () => {
  const streams = new FeatureStreams({ options, maxConcurrent: 2 });
  const a = streams.start('a');
  throwsCode(() => streams.start('a'), 'E_DUPLICATE_STREAM', Error, /'a'/);
  streams.start('b');
  throwsCode(() => streams.start('c'), 'E_TOO_MANY_STREAMS', Error, /maxConcurrent/);
  throwsCode(() => streams.get('nope'), 'E_UNKNOWN_STREAM', Error, /nope/);
  throwsCode(() => streams.push('nope', new Float32Array(4)), 'E_UNKNOWN_STREAM');
  assert.equal(streams.get('a'), a);
  assert.equal(a.utteranceId, 'a');
  throwsCode(() => a.push(new Float32Array(0)), 'E_EMPTY_CHUNK', RangeError);
  throwsCode(() => a.push(Float32Array.of(0, 1, NaN)), 'E_NOT_FINITE', RangeError, /NaN at sample 2/);
  throwsCode(() => a.push([1, 2, 3] as unknown as Float32Array), 'ERR_INVALID_ARG_TYPE', TypeError, /chunk/);
  throwsCode(() => a.push(new Float64Array(3) as unknown as Float32Array), 'ERR_INVALID_ARG_TYPE', TypeError, /Float32Array or an Int16Array/);
  assert.equal(streams.push('a', speech(4000)), true);
  const summary = await streams.finalize('a');
  assert.equal(summary.samples, 4000, 'the refused chunks were not taken');
  assert.equal(a.closed, true);
  throwsCode(() => a.push(speech(10)), 'E_STREAM_CLOSED', Error, /'a'/);
  assert.deepEqual(await a.finalize(), summary, 'finalize again gives the same summary');
  streams.start('c');
  // Options.
  throwsCode(() => new FeatureStreams({ options, bogus: 1 } as never), 'ERR_INVALID_ARG_VALUE', TypeError, /bogus/);
  throwsCode(() => new FeatureStreams({ options: { nFft: 512 } } as never), 'ERR_INVALID_ARG_TYPE', TypeError, /sampleRate/);
  throwsCode(() => new FeatureStreams({ options, maxConcurrent: 0 }), 'ERR_OUT_OF_RANGE', RangeError, /maxConcurrent/);
  throwsCode(() => new FeatureStreams({ options, idleTimeoutMs: 0 }), 'ERR_OUT_OF_RANGE', RangeError, /idleTimeoutMs/);
  throwsCode(() => new FeatureStreams({ options, topDbReference: 'max' as never }), 'ERR_INVALID_ARG_VALUE', RangeError, /topDbReference/);
  throwsCode(() => streams.start('d', { onFrames: 3 as never }), 'ERR_INVALID_ARG_TYPE', TypeError, /onFrames/);
  throwsCode(() => streams.start('d', { options: { nFft: 0 } }), 'ERR_OUT_OF_RANGE', RangeError, /nFft/);
  throwsCode(() => streams.start('d', { colour: 1 } as never), 'ERR_INVALID_ARG_VALUE', TypeError, /colour/);
  throwsCode(() => streams.start(''), 'ERR_OUT_OF_RANGE', RangeError, /utteranceId/);
  throwsCode(() => streams.start(7 as never), 'ERR_INVALID_ARG_TYPE', TypeError, /utteranceId/);
  throwsCode(() => (FeatureStream as unknown as () => void)(), 'ERR_CONSTRUCT_CALL_REQUIRED', TypeError);
  await streams.close();
});

test('an onFrames callback that throws: the stream goes on, the error is reported once', async () => {
  const streams = new FeatureStreams({ options });
  const audio = speech(16000, 2);
  // With an 'error' listener: it gets the first error, finalize resolves.
  let calls = 0;
  const s = streams.start('loud', { onFrames: () => { calls++; throw new Error('boom'); } });
  const errors: Error[] = [];
  s.on('error', (e) => errors.push(e));
  for (let i = 0; i < audio.length; i += 1600) s.push(audio.subarray(i, i + 1600));
  const summary = await s.finalize();
  assert.equal(errors.length, 1);
  assert.equal((errors[0] as Error & { code: string }).code, 'E_CALLBACK');
  assert.equal((errors[0].cause as Error).message, 'boom');
  assert.equal(summary.callbackErrors, calls);
  assert.equal(summary.frames, 101, 'every frame was delivered');
  // Without one: finalize rejects with it, the summary attached.
  const quiet = streams.start('quiet', { onFrames: () => { throw new TypeError('bad'); } });
  quiet.push(audio);
  const err = await rejection(quiet.finalize());
  assert.equal(err.code, 'E_CALLBACK');
  assert.match(err.message, /quiet.*bad/);
  assert.equal((err.summary as { frames: number }).frames, 101);
  await streams.close();
});

test('abort, close, idle timeout and an empty stream: every promise and reader settles', async () => {
  const streams = new FeatureStreams({ options });
  // Abort: finalize and the iterator reject with an AbortError.
  const a = streams.start('abort');
  a.push(speech(8000));
  const finalized = a.finalize();
  a.abort();
  const aborted = await rejection(finalized);
  assert.equal(aborted.name, 'AbortError');
  assert.equal(aborted.code, 'ABORT_ERR');
  const b = streams.start('abort-iter');
  b.push(speech(8000));
  const iterating = (async () => { for await (const _ of b) b.abort(); })();
  assert.equal((await rejection(iterating)).code, 'ABORT_ERR');
  // Breaking out of for-await aborts the stream.
  const c = streams.start('break');
  c.push(speech(8000));
  for await (const _ of c) break;
  assert.equal(c.closed, true);
  assert.equal((await rejection(c.finalize())).code, 'ABORT_ERR');
  // Idle: finalized by the reaper, 'end' says why.
  // (The audio is made first: the idle time runs from start to the push.)
  const idler = new FeatureStreams({ options, idleTimeoutMs: 200 });
  const idleAudio = speech(4000);
  const idle = idler.start('idle');
  idle.push(idleAudio);
  const [ended] = await once(idle, 'end');
  assert.equal(ended.reason, 'idle');
  assert.equal((await idle.finalize()).reason, 'idle');
  assert.equal(idler.getStats().idleClosed, 1);
  // Nothing pushed: rejects as extractFeatures on empty audio does.
  const empty = streams.start('empty');
  assert.equal((await rejection(empty.finalize())).code, 'E_EMPTY_AUDIO');
  // close(): open streams finalize, readers end, new ones are refused.
  const open = streams.start('open');
  open.push(speech(3000));
  const reading = (async () => { let n = 0; for await (const blk of open) n += blk.frames; return n; })();
  await streams.close();
  const closed = await open.finalize();
  assert.equal(closed.reason, 'closed');
  assert.equal(await reading, closed.frames);
  throwsCode(() => streams.start('late'), 'E_CLOSED');
  const stats = streams.getStats();
  assert.deepEqual(
    [stats.open, stats.started, stats.aborted, stats.idleClosed, stats.failed, stats.closed],
    [0, 5, 3, 0, 1, 1],
  );
  assert.ok(stats.latency.p99 >= stats.latency.p50 && stats.latency.p50 > 0);
  assert.ok(stats.frames > 0);
});

test('buffers count against a memory manager, and the profiler sees push-to-frames latency', async () => {
  const memory = new GAMAMemoryManager({ maxMemory: '1MiB', reservedMemory: 0, device: 'cpu' });
  const streams = new FeatureStreams({ options, memoryManager: memory });
  const s = streams.start('m');
  s.push(speech(16000));
  assert.ok(memory.getMemoryUsage().host.used > 64000);
  throwsCode(() => s.push(new Float32Array(400000)), 'E_BUDGET');
  await s.finalize();
  assert.equal(memory.getMemoryUsage().host.used, 0, 'given back when the stream ends');
  const profiler = new PerformanceProfiler();
  const series = profiler.getPerformanceSummary().find((e) => e.component === 'streams');
  assert.ok(series && series.operation === 'push_to_frames' && series.count > 0);
  await streams.close();
});

test('with a featureCache, a finalized stream stores its whole utterance under its cacheKey', async () => {
  const cache = new AudioFeatureCache({ maxEntries: 10 });
  const streams = new FeatureStreams({ options, featureCache: cache });
  const audio = speech(12000, 8);
  const { summary } = await streamed(streams, 'cached', audio, 320, { cacheKey: 'utt:cached' });
  assert.equal(summary.cacheKey, 'utt:cached');
  const stored = cache.get('utt:cached') as ExtractedFeatures;
  const offline = extractFeatures(audio, options);
  for (const name of NAMES) assert.deepEqual(flat(stored, name), flat(offline, name), name);
  assert.equal(stored.logMel!.frames, offline.logMel!.frames);
  // With a topDb floor, what is stored is floored at the whole utterance's
  // peak, as extractFeatures floors it, whichever floor the blocks had:
  // here a loud start and a part 60 dB quieter, which the floor lifts.
  const floored = { ...options, topDb: 40, features: ['mfcc', 'rms'] as ('mfcc' | 'rms')[] }
  const quiet = audio.map((x, i) => (i < 6000 ? x : x * 1e-3))
  const wanted = extractFeatures(quiet, floored)
  for (const topDbReference of ['none', 'running'] as const) {
    const key = `utt:floored:${topDbReference}`
    const { blocks } = await streamed(streams, key, quiet, 500, { cacheKey: key, options: floored, topDbReference })
    const cached = cache.get(key) as ExtractedFeatures
    assert.deepEqual(cached.mfcc!.data, wanted.mfcc!.data, topDbReference)
    assert.deepEqual(cached.rms, wanted.rms)
    const blockMfcc = blocks.flatMap((b) => Array.from((b.mfcc as Matrix).data))
    assert.notDeepEqual(blockMfcc, Array.from(wanted.mfcc!.data), 'the blocks were floored otherwise')
  }
  // Aborted: nothing stored. Without a featureCache, cacheKey is refused.
  const a = streams.start('gone', { cacheKey: 'utt:gone' });
  a.push(audio);
  a.abort();
  assert.equal(cache.has('utt:gone'), false);
  const plain = new FeatureStreams({ options });
  throwsCode(() => plain.start('x', { cacheKey: 'k' }), 'ERR_INVALID_ARG_TYPE', TypeError, /featureCache/);
  throwsCode(() => new FeatureStreams({ options, featureCache: {} as never }), 'ERR_INVALID_ARG_TYPE', TypeError, /AudioFeatureCache/);
  await streams.close();
});

test('streams outlive a collected FeatureStreams, and a forgotten stream lets Node exit after its idle timeout', () => {
  const script = `
    const { FeatureStreams } = require(${JSON.stringify(require.resolve('../index.js'))});
    const options = { sampleRate: 16000, nFft: 512, hopLength: 160, features: ['rms'] };
    // Long enough that 'kept' (pushed after a GC) never idles out.
    let streams = new FeatureStreams({ options, idleTimeoutMs: 2000 });
    const kept = streams.start('kept');
    const forgotten = streams.start('forgotten');
    forgotten.push(new Float32Array(1600).fill(0.5));
    streams = null;
    global.gc();
    kept.push(new Float32Array(16000).fill(0.25));
    kept.finalize().then((s) => console.log('kept', s.frames, s.reason));
    forgotten.on('end', (s) => console.log('forgotten', s.frames, s.reason));
  `;
  const run = spawnSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8', timeout: 60000 });
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /kept 101 finalized/);
  assert.match(run.stdout, /forgotten 11 idle/);
});
