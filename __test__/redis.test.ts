// The Redis second tier of AudioFeatureCache against a real redis-server
// (the Debian package), started by each test on a free local port.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { createClient } from 'redis';

import { AudioFeatureCache, PerformanceProfiler } from '../index.js';
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { redisAvailable, startRedis, startCluster } = require('../scripts/redis-server.js');

const root = path.join(__dirname, '..');
const skip = redisAvailable()
  ? false
  : 'redis-server is not installed: `apt-get install redis-server` runs the Redis tier tests';
if (skip) console.log(`# Redis tier tests skipped: ${skip}`);

type Server = { url: string; port: number; start(): Promise<void>; stop(): Promise<void>; close(): Promise<void> };

/** Runs `body` with a fresh server, closing it after. */
async function withRedis(body: (server: Server) => Promise<void>): Promise<void> {
  const server: Server = await startRedis();
  try {
    await body(server);
  } finally {
    await server.close();
  }
}

/** Polls `ready` until it holds, failing after 10 s (for states another process causes). */
async function until(what: string, ready: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await ready())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Runs a CommonJS script in a second Node process; resolves with its stdout. */
async function child(script: string): Promise<string> {
  const proc = spawn(process.execPath, ['-e', `const { AudioFeatureCache } = require(${JSON.stringify(root)});\n${script}`], {
    stdio: ['ignore', 'pipe', 'inherit'],
    // A process that never exits fails the test instead of hanging the suite.
    timeout: 20_000,
  });
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  const [code] = await once(proc, 'exit');
  assert.equal(code, 0, `child process failed:\n${script}`);
  return out;
}

async function raw(url: string) {
  const client = createClient({ url });
  // The server is stopped under it at the end of a test.
  client.on('error', () => {});
  await client.connect();
  return client;
}

/** Waits until `n` caches listen for invalidations under `prefix` (subscriptions are made in the background). */
async function subscribed(url: string, prefix: string, n: number): Promise<void> {
  const client = await raw(url);
  try {
    const channel = `${prefix}:invalidate`;
    await until('the subscriptions are up', async () => ((await client.pubSubNumSub(channel))[channel] ?? 0) >= n);
  } finally {
    client.destroy();
  }
}

/** Waits until `listener` heard every invalidation `sender` published (a write's own message can reach it after it read the new value). */
async function heard(sender: AudioFeatureCache, listener: AudioFeatureCache): Promise<void> {
  const sent = sender.getStats().l2!.invalidationsSent;
  await until('the listener heard the sender', () => listener.getStats().l2!.invalidationsReceived >= sent);
}

function tiered(url: string, keyPrefix: string, extra: Record<string, unknown> = {}) {
  return new AudioFeatureCache({ redis: { url, keyPrefix, ...extra } });
}

test('a second process reads what the first wrote, and its L1 fills', { skip }, () =>
  withRedis(async ({ url }) => {
    await child(`
      const cache = new AudioFeatureCache({ redis: { url: ${JSON.stringify(url)}, keyPrefix: 'p1' } });
      const logMel = new Float32Array(64 * 101).map((_, i) => -80 + (i % 64));
      cache.set('clip-1', logMel, { tags: ['speaker:7'] });
      cache.set('meta', { speaker: 7, onsets: [0.1, 0.5], at: new Date(5) });
      // No flush: Node stays up until the writes are done.
    `);
    const cache = tiered(url, 'p1');
    assert.equal(cache.get('clip-1'), undefined, 'nothing in L1 yet');
    const vector = await cache.getAsync<Float32Array>('clip-1');
    assert.ok(vector instanceof Float32Array);
    assert.equal(vector.length, 64 * 101);
    assert.equal(vector[65], -79);
    assert.deepEqual(await cache.getAsync('meta'), { speaker: 7, onsets: [0.1, 0.5], at: new Date(5) });
    assert.equal(await cache.getAsync('absent'), undefined);
    assert.deepEqual(cache.get('clip-1'), vector, 'an L2 hit fills L1');
    const stats = cache.getStats();
    assert.equal(stats.redis, 'up');
    assert.equal(stats.l2?.hits, 2);
    assert.equal(stats.l2?.misses, 1);
    assert.equal(cache.invalidate({ tag: 'speaker:7' }), 1, 'the tags came along');

    const profiler = new PerformanceProfiler({ featureCache: cache });
    const text = profiler.metrics();
    assert.match(text, /^gama_cache_redis_up 1$/m);
    assert.match(text, /^gama_cache_redis_hits 2$/m);
    assert.match(text, /gama_operation_duration_seconds\{component="cache",operation="redis.roundTrip",quantile="0.99"\}/);
    const section = (profiler.getStats() as unknown as { cache: { redis: { state: string; hits: number } } }).cache;
    assert.equal(section.redis.state, 'up');
    assert.equal(section.redis.hits, 2);
  }));

test('a process exits by itself after its Redis work, whatever it queued', { skip }, () =>
  withRedis(async ({ url }) => {
    const out = await child(`
      const cache = new AudioFeatureCache({ maxMemory: 1000, redis: { url: ${JSON.stringify(url)}, keyPrefix: 'p8' } });
      cache.setMany([]);
      cache.getOrCompute('huge', () => new Float32Array(10_000)).then((v) => console.log('computed', v.length));
      cache.getAsync('nothing').then((v) => console.log('read', v));
    `);
    assert.match(out, /computed 10000/);
    assert.match(out, /read undefined/);
  }));

test('an invalidation in one process reaches Redis and the other process within moments', { skip }, () =>
  withRedis(async ({ url }) => {
    const cache = tiered(url, 'p2');
    cache.set('a', new Float32Array([1]), { tags: ['take'] });
    cache.set('b', new Float32Array([2]), { tags: ['take'] });
    cache.set('other', new Float32Array([3]));
    await cache.flush();
    await subscribed(url, 'p2', 1);
    await child(`
      const cache = new AudioFeatureCache({ redis: { url: ${JSON.stringify(url)}, keyPrefix: 'p2' } });
      cache.invalidate({ tag: 'take' });
    `);
    await until('the tagged entries leave this L1', () => !cache.has('a') && !cache.has('b'));
    assert.ok(cache.has('other'));
    const fresh = tiered(url, 'p2');
    assert.deepEqual(await fresh.getManyAsync(['a', 'b', 'other']), [undefined, undefined, new Float32Array([3])]);
    assert.ok(cache.getStats().l2!.invalidationsReceived >= 1);

    // An overwrite elsewhere drops the stale copy here.
    await child(`
      const cache = new AudioFeatureCache({ redis: { url: ${JSON.stringify(url)}, keyPrefix: 'p2' } });
      cache.set('other', new Float32Array([4]));
    `);
    await until('the stale copy leaves this L1', () => !cache.has('other'));
    assert.deepEqual(await cache.getAsync('other'), new Float32Array([4]));
  }));

test('concurrent lookups of one key share one round trip; getManyAsync makes one', { skip }, () =>
  withRedis(async ({ url }) => {
    const writer = tiered(url, 'p3');
    for (let i = 0; i < 64; i++) writer.set(`k${i}`, new Float32Array([i]));
    await writer.flush();
    const cache = tiered(url, 'p3');
    const [x, y, z] = await Promise.all([cache.getAsync('k1'), cache.getAsync('k1'), cache.getAsync('k1')]);
    assert.deepEqual([x, y, z], [new Float32Array([1]), new Float32Array([1]), new Float32Array([1])]);
    assert.notEqual(x, y, 'each caller gets its own array');
    assert.equal(cache.getStats().l2?.roundTrips, 1);
    const keys = Array.from({ length: 64 }, (_, i) => `k${i}`);
    const values = await cache.getManyAsync(keys);
    assert.deepEqual(values.map((v) => (v as Float32Array)[0]), keys.map((_, i) => i));
    assert.equal(cache.getStats().l2?.roundTrips, 2, 'k1 came from L1; the other 63 in one MGET');
  }));

test('every kind of value comes back from Redis whole, each caller with its own copy', { skip }, () =>
  withRedis(async ({ url }) => {
    const writer = tiered(url, 'p9');
    const values: Record<string, unknown> = {
      f32: new Float32Array([1.5, -2, 3]),
      f64: new Float64Array([Math.PI, -0, 1e300]),
      i16: new Int16Array([-32768, 7, 32767]),
      u8: new Uint8Array([0, 128, 255]),
      buf: Buffer.from('bytes \u0000 and more'),
      big: new Float32Array(20_000).map((_, i) => i),
      meta: { m: new Map([['a', 1]]), s: new Set([2]), at: new Date(3), n: 10n, list: [1, , 3] },
      'nul\u0000key': new Float32Array([9]),
      empty: new Float32Array(0),
    };
    for (const [k, v] of Object.entries(values)) writer.set(k, v as never);
    await writer.flush();
    const keys = [...Object.keys(values), 'absent'];
    const many = await tiered(url, 'p9').getManyAsync(keys);
    const one = tiered(url, 'p9');
    const single = await Promise.all(keys.map((k) => one.getAsync(k)));
    const twice = tiered(url, 'p9');
    const [a, b] = await Promise.all([twice.getAsync('meta'), twice.getAsync('meta')]);
    const [c, d] = await Promise.all([twice.getAsync('buf'), twice.getAsync('buf')]);
    for (const got of [many, single]) {
      assert.deepEqual(got, [...Object.values(values), undefined]);
      for (const v of got) {
        if (ArrayBuffer.isView(v) && !Buffer.isBuffer(v)) {
          assert.equal(v.byteOffset, 0);
          assert.equal(v.buffer.byteLength, v.byteLength, 'each array owns its own buffer');
        }
      }
    }
    assert.ok(Buffer.isBuffer(many[4]) && Buffer.isBuffer(single[4]));
    assert.deepEqual([a, c], [values.meta, values.buf]);
    assert.notEqual(a, b, 'a shared lookup still gives each caller its own object');
    assert.deepEqual(a, b);
    assert.notEqual(c, d);
    (c as Buffer)[0] = 0;
    assert.deepEqual(d, values.buf);
    assert.equal(twice.getStats().l2?.roundTrips, 2);

    assert.throws(() => one.getAsync(5 as never), (e: Error & { code?: string }) => e instanceof TypeError && /key/.test(e.message));
    assert.throws(() => one.getManyAsync(['a', 5] as never), (e: Error) => e instanceof TypeError && /keys\[1\]/.test(e.message));
    assert.throws(() => one.getManyAsync('a' as never), (e: Error) => e instanceof TypeError && /keys must be an array/.test(e.message));
  }));

test('getOrCompute and warm look in Redis before computing', { skip }, () =>
  withRedis(async ({ url }) => {
    const a = tiered(url, 'p4');
    const b = tiered(url, 'p4');
    let computed = 0;
    const compute = async () => {
      computed++;
      return new Float32Array([42]);
    };
    const [first, second] = await Promise.all([a.getOrCompute('f', compute), a.getOrCompute('f', compute)]);
    assert.deepEqual([first, second], [new Float32Array([42]), new Float32Array([42])]);
    assert.equal(computed, 1);
    await a.flush();
    assert.deepEqual(await b.getOrCompute('f', compute), new Float32Array([42]));
    assert.equal(computed, 1, 'the second process found it in Redis');
    assert.equal(b.getStats().l2?.writes, 0, 'nothing written back');
    await assert.rejects(b.getOrCompute('g', () => { throw new RangeError('no'); }), RangeError);

    a.set('w1', new Float32Array([1]));
    await a.flush();
    const loaded: string[] = [];
    const result = await b.warm(['f', 'w1', 'w2'], (key) => {
      loaded.push(key);
      return new Float32Array([7]);
    });
    assert.deepEqual(loaded, ['w2']);
    assert.equal(result.skipped, 1);
    assert.equal(result.fromRedis, 1);
    assert.equal(result.loaded, 1);
  }));

test('Redis down at start, going away and coming back: L1 keeps serving, state follows', { skip }, () =>
  withRedis(async (server) => {
    await server.stop();
    const errors: string[] = [];
    const cache = new AudioFeatureCache({
      redis: { url: server.url, keyPrefix: 'p5', onError: (e) => errors.push(e.code) },
    });
    // The state turns 'down' first, then onError hears of it.
    await until('onError hears the tier is down', () => errors.length > 0);
    assert.equal(errors[0], 'E_REDIS_DOWN');
    assert.equal(cache.getStats().redis, 'down');
    cache.set('k', new Float32Array([1]));
    assert.equal(await cache.getAsync('missing'), undefined);
    assert.deepEqual(await cache.getAsync('k'), new Float32Array([1]));
    await cache.flush();
    assert.equal(cache.getStats().l2?.writesSkipped, 1);

    await server.start();
    await until('the tier is up', () => cache.getStats().redis === 'up');
    cache.set('k2', new Float32Array([2]));
    await cache.flush();
    assert.deepEqual(await tiered(server.url, 'p5').getAsync('k2'), new Float32Array([2]));

    await server.stop();
    await until('a lookup notices', async () => {
      await cache.getAsync('nope');
      return cache.getStats().redis === 'down';
    });
    assert.deepEqual(cache.get('k2'), new Float32Array([2]), 'L1 data is intact');
    await server.start();
    await until('the tier is up again', () => cache.getStats().redis === 'up');
    assert.ok(cache.getStats().l2!.disconnects >= 2);
  }));

test('a lookup slower than timeoutMs is a miss', { skip }, () =>
  withRedis(async ({ url }) => {
    const cache = tiered(url, 'p6');
    const other = tiered(url, 'p6', { timeoutMs: 100 });
    cache.set('k', new Float32Array([1]));
    await cache.flush();
    assert.equal(await other.getAsync('absent'), undefined);
    assert.equal(other.getStats().redis, 'up');
    const client = await raw(url);
    await client.sendCommand(['CLIENT', 'PAUSE', '1500', 'ALL']);
    const started = performance.now();
    assert.equal(await other.getAsync('k'), undefined);
    assert.ok(performance.now() - started < 1000);
    assert.equal(other.getStats().l2?.timeouts, 1);
    assert.equal(other.getStats().redis, 'up', 'slow is not down');
    client.destroy();
  }));

test('odd keys, foreign values and values over maxValueBytes', { skip }, () =>
  withRedis(async ({ url }) => {
    const errors: string[] = [];
    const cache = new AudioFeatureCache({
      redis: { url, keyPrefix: 'p7', maxValueBytes: 1000, onError: (e) => errors.push(e.code) },
    });
    const other = tiered(url, 'p7');
    const odd = ['glob*[a]?', 'nul\0byte', 'ünïcödé ✓ 🎵', 'back\\slash', ' '];
    odd.forEach((k, i) => cache.set(k, new Float32Array([i])));
    cache.set('big', new Float32Array(1000));
    await cache.flush();
    assert.deepEqual(
      (await other.getManyAsync(odd)).map((v) => (v as Float32Array)[0]),
      [0, 1, 2, 3, 4],
    );
    assert.deepEqual(cache.get('big'), new Float32Array(1000), 'kept in L1');
    assert.equal(await other.getAsync('big'), undefined, 'not written to Redis');
    cache.invalidate({ prefix: 'glob*' });
    await cache.flush();
    assert.equal(await tiered(url, 'p7').getAsync('glob*[a]?'), undefined);
    assert.deepEqual(await tiered(url, 'p7').getAsync('back\\slash'), new Float32Array([3]));

    const client = await raw(url);
    await client.set('p7:v:foreign', 'not ours');
    assert.equal(await cache.getAsync('foreign'), undefined);
    client.destroy();
    await until('both errors arrive', () => errors.length >= 2);
    assert.deepEqual(errors, ['E_TOO_LARGE', 'E_REDIS_DECODE']);
  }));

test('a Redis Cluster: entries, lookups and invalidations span its three nodes', { skip }, async () => {
  const cluster = await startCluster();
  try {
    const options = (prefix: string) => ({ redis: { url: cluster.url, keyPrefix: prefix, cluster: true } });
    const writer = new AudioFeatureCache(options('c1'));
    const reader = new AudioFeatureCache(options('c1'));
    await subscribed(cluster.url, 'c1', 2);
    const keys = Array.from({ length: 120 }, (_, i) => `clip:${i}`);
    keys.forEach((k, i) => writer.set(k, new Float32Array([i, -i]), { tags: [i % 2 ? 'odd' : 'even'] }));
    await writer.flush();
    await heard(writer, reader);
    for (const node of cluster.nodes) {
      const client = await raw(node.url);
      assert.ok((await client.dbSize()) > 10, 'every node holds some of the entries');
      client.destroy();
    }
    const found = await reader.getManyAsync(keys);
    assert.deepEqual(found, keys.map((_, i) => new Float32Array([i, -i])));
    assert.deepEqual(await Promise.all(['clip:7', 'clip:8', 'none'].map((k) => new AudioFeatureCache(options('c1')).getAsync(k))), [
      new Float32Array([7, -7]),
      new Float32Array([8, -8]),
      undefined,
    ]);
    writer.invalidate({ tag: 'even' });
    await writer.flush();
    await until('the reader drops the even keys', () => reader.getStats().entries === 60);
    const after = await new AudioFeatureCache(options('c1')).getManyAsync(keys);
    assert.deepEqual(after.map((v) => v !== undefined), keys.map((_, i) => i % 2 === 1));
    writer.invalidate({ prefix: 'clip:1' });
    await writer.flush();
    await until('the reader drops clip:1*', () => reader.get('clip:11') === undefined);
    assert.equal(await new AudioFeatureCache(options('c1')).getAsync('clip:13'), undefined);
    assert.deepEqual(await new AudioFeatureCache(options('c1')).getAsync('clip:3'), new Float32Array([3, -3]));
    assert.equal(writer.getStats().redis, 'up');
    assert.equal(writer.getStats().l2?.errors, 0);
  } finally {
    await cluster.close();
  }
});

test('close() sends what was queued, lets the connections go, and leaves L1 serving', { skip }, () =>
  withRedis(async ({ url }) => {
    const errors: string[] = [];
    const cache = new AudioFeatureCache({ redis: { url, keyPrefix: 'p10', onError: (e) => errors.push(e.code) } });
    const keys = Array.from({ length: 50 }, (_, i) => `k${i}`);
    keys.forEach((k, i) => cache.set(k, new Float32Array([i])));
    await cache.close();
    assert.equal(cache.getStats().redis, 'closed');
    const other = tiered(url, 'p10');
    assert.deepEqual((await other.getManyAsync(keys)).map((v) => (v as Float32Array)[0]), keys.map((_, i) => i));
    const client = await raw(url);
    // Left: the other cache's two connections and this one.
    await until("the closed cache's connections are gone", async () => (await client.clientList()).length === 3);
    client.destroy();

    other.set('from-other', new Float32Array([7]));
    await other.flush();
    assert.equal(await cache.getAsync('from-other'), undefined, 'a closed tier is not read');
    cache.set('late', new Float32Array([8]));
    await cache.flush();
    assert.deepEqual(cache.get('late'), new Float32Array([8]), 'L1 keeps serving');
    assert.equal(await other.getAsync('late'), undefined, 'a closed tier is not written');
    await cache.close();
    assert.deepEqual(errors, []);
    await new AudioFeatureCache().close();
  }));

test('bad redis options are refused with a clear error naming the option', () => {
  const cases: [Record<string, unknown>, RegExp, string][] = [
    [{ url: 'http://x' }, /options\.redis\.url/, 'ERR_INVALID_URL'],
    [{}, /options\.redis\.url is required/, 'ERR_INVALID_ARG_TYPE'],
    [{ url: 'redis://127.0.0.1', keyPrfix: 'x' }, /keyPrfix.*did you mean 'keyPrefix'/, 'ERR_INVALID_ARG_VALUE'],
    [{ url: 'redis://127.0.0.1', timeoutMs: 0 }, /options\.redis\.timeoutMs/, 'ERR_OUT_OF_RANGE'],
    [{ url: 'redis://127.0.0.1', compression: 'gzip' }, /options\.redis\.compression/, 'ERR_INVALID_ARG_VALUE'],
    [{ url: 'redis://127.0.0.1', onError: 5 }, /options\.redis\.onError must be a function/, 'ERR_INVALID_ARG_TYPE'],
    [{ url: 'redis://127.0.0.1', cluster: 1 }, /options\.redis\.cluster/, 'ERR_INVALID_ARG_TYPE'],
    [{ url: 'redis://127.0.0.1', maxValueBytes: -1 }, /options\.redis\.maxValueBytes/, 'ERR_OUT_OF_RANGE'],
  ];
  for (const [redis, message, code] of cases) {
    assert.throws(() => new AudioFeatureCache({ redis } as never), (e: Error & { code?: string }) => {
      assert.match(e.message, message);
      assert.equal(e.code, code, e.message);
      return true;
    });
  }
  assert.throws(() => new AudioFeatureCache({ redis: 'redis://x' } as never), /options\.redis must be an object/);
});

test('without a redis option the async reads are L1 reads', async () => {
  const cache = new AudioFeatureCache();
  cache.set('k', new Float32Array([1]));
  assert.deepEqual(await cache.getAsync('k'), new Float32Array([1]));
  assert.deepEqual(await cache.getManyAsync(['k', 'x']), [new Float32Array([1]), undefined]);
  await cache.flush();
  assert.equal(cache.getStats().redis, 'off');
  assert.equal(cache.getStats().l2, undefined);
  assert.equal(cache.invalidate({ keys: ['k', 'k'] }), 1);
  assert.throws(() => cache.invalidate({ tag: 'a', keys: [] }), /exactly one of/);
});
