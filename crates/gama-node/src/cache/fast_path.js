// Fast read path of AudioFeatureCache#get, installed over the native method
// when the addon loads.
//
// Two costs dominate a naive native `get` of a small vector: unwrapping
// `this` for a class-method call, and creating an off-heap ArrayBuffer for
// the result through N-API (about 1 µs on Node 20 for 512 bytes, far more
// than the lookup). So each cache gets, on first read, a native handle (no
// unwrap per call); native code copies a small value into the cache's
// scratch buffer, and JS copies it out with `TypedArray.prototype.slice`,
// which V8 does without a trip through N-API. Every array returned owns its
// own ArrayBuffer: no read can see or detach another.
//
// getMany, getManyPacked and the lookups below pass their keys a second
// time joined with NUL characters, so native code reads one string instead
// of one per key (it falls back to the array when a key contains a NUL
// itself). getMany reads through readMany: the values come back packed in
// one buffer (see `unpack`), not as one N-API array each.
//
// readInto(handle, key, scratch) returns -1 on a miss, -2 when the value
// waits in takePending (JSON or larger than the scratch buffer), else
// `length * 8 + typeTag` with the value written at the start of `scratch`.
//
// With a Redis tier, getAsync and getManyAsync read L1 through these fast
// paths; the keys L1 lacks, from every call of one turn, go to native code
// as one list from a microtask (one MGET), and the values come back packed
// in one ArrayBuffer (see `unpack`) instead of one N-API call each.
// Concurrent getAsync calls for one key share one lookup.
'use strict';
(function install(Cache, makeHandle, readInto, takePending, readMany, lookupRemote, scratchBytes, lookupKeys) {
  const getStats = Cache.prototype.getStats;
  // Kept beside the cache, not on it: a frozen cache still reads.
  const states = new WeakMap();

  function attach(cache) {
    // Never handed out: only copied from, right after native code wrote it.
    const scratch = new ArrayBuffer(scratchBytes);
    const handle = makeHandle(cache);
    const state = {
      handle,
      tiered: getStats.call(cache).redis !== 'off',
      // Lookups of this turn not yet sent, and getAsync's per key.
      chunks: null,
      flights: new Map(),
      scratch,
      f32: new Float32Array(scratch),
      f64: new Float64Array(scratch),
      i16: new Int16Array(scratch),
      u8: new Uint8Array(scratch),
    };
    states.set(cache, state);
    return state;
  }

  function copyOut(s, code) {
    const length = Math.floor(code / 8);
    switch (code % 8) {
      case 0: return s.f32.slice(0, length);
      case 1: return s.f64.slice(0, length);
      case 2: return s.i16.slice(0, length);
      case 3: return s.u8.slice(0, length);
      default: {
        const bytes = s.u8.slice(0, length);
        return Buffer.from(bytes.buffer, 0, length);
      }
    }
  }

  /** `keys` joined with NULs for native code, or undefined where it cannot be. */
  function joinedOf(keys) {
    let joinable = Array.isArray(keys) && keys.length <= 1 << 20;
    for (let i = 0; joinable && i < keys.length; i++) joinable = typeof keys[i] === 'string';
    return joinable ? keys.join('\0') : undefined;
  }

  const nativeGetManyPacked = Cache.prototype.getManyPacked;
  Object.defineProperty(Cache.prototype, 'getManyPacked', {
    configurable: true,
    writable: true,
    value: function getManyPacked(keys) {
      return nativeGetManyPacked.call(this, keys, joinedOf(keys));
    },
  });

  /** The L1 values of `keys` (checked as native getMany does), and their joined form. */
  function readLocal(s, keys) {
    const joined = joinedOf(keys);
    const packed = readMany(s.handle, keys, joined);
    return { joined, found: packed === undefined ? undefined : unpack(packed, keys.length) };
  }

  const nativeGetMany = Cache.prototype.getMany;
  Object.defineProperty(Cache.prototype, 'getMany', {
    configurable: true,
    writable: true,
    value: function getMany(keys) {
      if (!(this instanceof Cache)) return nativeGetMany.call(this, keys);
      const { found } = readLocal(states.get(this) || attach(this), keys);
      return found ?? new Array(keys.length).fill(undefined);
    },
  });

  // Lookups of about `lookupKeys` keys (a call's keys are never split) are
  // answered one by one, so callers whose values came back resume, and
  // look more up, while the others are still in flight.

  /**
   * The values `readMany` or `lookupRemote` packed: `[bytes, others?]`,
   * where the Buffer `bytes` starts with (offset, length * 8 + tag) per
   * value as f64 (offset -1: missing; -2: a structured value, in
   * `others`), then the payloads. Every array returned owns its own
   * ArrayBuffer.
   */
  function unpack(packed, n) {
    // A Buffer of its own (N-API's napi_create_buffer): offset 0.
    const buffer = packed[0].buffer;
    const others = packed[1];
    const codes = new Float64Array(buffer, 0, 2 * n);
    const out = new Array(n);
    let f32, f64, i16, u8;
    for (let i = 0; i < n; i++) {
      const at = codes[2 * i];
      const code = codes[2 * i + 1];
      if (at < 0) {
        out[i] = at === -1 ? undefined : others[i];
        continue;
      }
      const length = Math.floor(code / 8);
      switch (code % 8) {
        case 0: f32 ??= new Float32Array(buffer); out[i] = f32.slice(at / 4, at / 4 + length); break;
        case 1: f64 ??= new Float64Array(buffer); out[i] = f64.slice(at / 8, at / 8 + length); break;
        case 2: i16 ??= new Int16Array(buffer); out[i] = i16.slice(at / 2, at / 2 + length); break;
        case 3: u8 ??= new Uint8Array(buffer); out[i] = u8.slice(at, at + length); break;
        default: {
          u8 ??= new Uint8Array(buffer);
          const bytes = u8.slice(at, at + length);
          out[i] = Buffer.from(bytes.buffer, 0, length);
        }
      }
    }
    return out;
  }

  /** Sends this turn's lookups and settles their callers. */
  function send(s) {
    for (const chunk of s.chunks) lookup(s, chunk);
    s.chunks = null;
  }

  /** Looks one chunk's keys up in Redis and settles its callers. */
  function lookup(s, { keys, joined, waiters }) {
    const settled = () => {
      for (let w = 0; w < waiters.length; w += 5) {
        if (waiters[w + 4] !== undefined) s.flights.delete(waiters[w + 4]);
      }
    };
    // Every caller hears an outcome, whatever fails (nothing is thrown
    // from this microtask or left as an unhandled rejection).
    const fail = (err) => {
      settled();
      for (let w = 0; w < waiters.length; w += 5) waiters[w + 3](err);
    };
    const found = (packed) => {
      let values;
      try {
        values = unpack(packed, keys.length);
      } catch (err) {
        return fail(err);
      }
      settled();
      for (let w = 0; w < waiters.length; w += 5) {
        const start = waiters[w];
        waiters[w + 2](values.slice(start, start + waiters[w + 1]));
      }
    };
    try {
      lookupRemote(s.handle, keys, joined.join('\0')).then(found, fail);
    } catch (err) {
      fail(err);
    }
  }

  /**
   * Queues `keys` (`joined`: the same joined with NULs) for this turn's
   * lookup: `done` gets their values, `fail` an error; `flight` names the
   * getAsync key whose shared lookup this is.
   */
  function enqueue(s, keys, joined, done, fail, flight) {
    if (s.chunks === null) {
      s.chunks = [];
      queueMicrotask(() => send(s));
    }
    let chunk = s.chunks[s.chunks.length - 1];
    if (chunk === undefined || chunk.keys.length >= lookupKeys) {
      chunk = { keys: [], joined: [], waiters: [] };
      s.chunks.push(chunk);
    }
    chunk.waiters.push(chunk.keys.length, keys.length, done, fail, flight);
    for (let i = 0; i < keys.length; i++) chunk.keys.push(keys[i]);
    chunk.joined.push(joined);
  }

  /** A value of its own for a caller that shared another's lookup. */
  function copy(value) {
    if (value === undefined) return value;
    if (Buffer.isBuffer(value)) return Buffer.from(value);
    if (ArrayBuffer.isView(value)) return value.slice();
    return structuredClone(value);
  }

  const nativeGetAsync = Cache.prototype.getAsync;
  Object.defineProperty(Cache.prototype, 'getAsync', {
    configurable: true,
    writable: true,
    value: function getAsync(key) {
      if (!(this instanceof Cache) || typeof key !== 'string') return nativeGetAsync.call(this, key);
      const s = states.get(this) || attach(this);
      if (!s.tiered) return nativeGetAsync.call(this, key);
      const local = get.call(this, key);
      if (local !== undefined) return Promise.resolve(local);
      const flight = s.flights.get(key);
      if (flight !== undefined) return flight.then(copy);
      const first = new Promise((resolve, reject) => enqueue(s, [key], key, (values) => resolve(values[0]), reject, key));
      s.flights.set(key, first);
      return first;
    },
  });

  const nativeGetManyAsync = Cache.prototype.getManyAsync;
  Object.defineProperty(Cache.prototype, 'getManyAsync', {
    configurable: true,
    writable: true,
    value: function getManyAsync(keys) {
      if (!(this instanceof Cache)) return nativeGetManyAsync.call(this, keys);
      const s = states.get(this) || attach(this);
      if (!s.tiered) return nativeGetManyAsync.call(this, keys);
      // Checks the keys (throwing as getMany does) and reads L1 under one lock.
      const { joined, found } = readLocal(s, keys);
      if (found === undefined) {
        if (keys.length === 0) return Promise.resolve([]);
        // None in L1: every key goes to Redis, joined once.
        return new Promise((resolve, reject) => enqueue(s, keys, joined ?? keys.join('\0'), resolve, reject));
      }
      const missing = [];
      for (let i = 0; i < found.length; i++) if (found[i] === undefined) missing.push(i);
      if (missing.length === 0) return Promise.resolve(found);
      const wanted = missing.map((i) => keys[i]);
      return new Promise((resolve, reject) =>
        enqueue(s, wanted, wanted.join('\0'), (values) => {
          for (let j = 0; j < missing.length; j++) found[missing[j]] = values[j];
          resolve(found);
        }, reject),
      );
    },
  });

  const nativeGet = Cache.prototype.get;
  function get(key) {
    if (!(this instanceof Cache)) return nativeGet.call(this, key);
    const s = states.get(this) || attach(this);
    const code = readInto(s.handle, key, s.scratch);
    if (code >= 0) return copyOut(s, code);
    if (code === -1) return undefined;
    return takePending(s.handle);
  }
  Object.defineProperty(Cache.prototype, 'get', { configurable: true, writable: true, value: get });
})
