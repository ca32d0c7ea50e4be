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
// getMany and getManyPacked pass their keys a second time joined with NUL
// characters, so native code reads one string instead of one per key (it
// falls back to the array when a key contains a NUL itself).
//
// readInto(handle, key, scratch) returns -1 on a miss, -2 when the value
// waits in takePending (JSON or larger than the scratch buffer), else
// `length * 8 + typeTag` with the value written at the start of `scratch`.
'use strict';
(function install(Cache, makeHandle, readInto, takePending, scratchBytes) {
  // Kept beside the cache, not on it: a frozen cache still reads.
  const states = new WeakMap();

  function attach(cache) {
    // Never handed out: only copied from, right after native code wrote it.
    const scratch = new ArrayBuffer(scratchBytes);
    const state = {
      handle: makeHandle(cache),
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

  for (const name of ['getMany', 'getManyPacked']) {
    const native = Cache.prototype[name];
    Object.defineProperty(Cache.prototype, name, {
      configurable: true,
      writable: true,
      value: {
        [name](keys) {
          let joinable = Array.isArray(keys) && keys.length <= 1 << 20;
          for (let i = 0; joinable && i < keys.length; i++) joinable = typeof keys[i] === 'string';
          return native.call(this, keys, joinable ? keys.join('\0') : undefined);
        },
      }[name],
    });
  }

  const nativeGet = Cache.prototype.get;
  Object.defineProperty(Cache.prototype, 'get', {
    configurable: true,
    writable: true,
    value: function get(key) {
      if (!(this instanceof Cache)) return nativeGet.call(this, key);
      const s = states.get(this) || attach(this);
      const code = readInto(s.handle, key, s.scratch);
      if (code >= 0) return copyOut(s, code);
      if (code === -1) return undefined;
      return takePending(s.handle);
    },
  });
})
