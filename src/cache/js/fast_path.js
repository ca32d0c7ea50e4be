// Fast read path of AudioFeatureCache#get, installed over the native method
// when the addon loads.
//
// Two costs dominate a naive native `get` of a small vector: unwrapping
// `this` for a class-method call, and creating a fresh off-heap ArrayBuffer
// for the result (about 1 µs on Node 20 for 512 bytes, far more than the
// lookup). So each cache gets, on first read, a native handle (no unwrap per
// call) and reads are copied by native code straight into a pooled slab
// ArrayBuffer, out of which JS cuts a typed-array view, the way Node's own
// Buffer pool serves small Buffers. Each read gets its own region, so the
// arrays returned never alias one another; like pooled Buffers, their
// `.buffer` is the shared slab (use `.slice()` for a standalone buffer).
//
// getMany and getManyPacked pass their keys a second time joined with NUL
// characters, so native code reads one string instead of one per key (it
// falls back to the array when a key contains a NUL itself).
//
// readInto(handle, key, slab, offset) returns -1 on a miss, -2 when the
// value waits in takePending (JSON or larger than POOLED_MAX), -3 when it
// waits in placePending (it did not fit the slab's remaining room), else
// `length * 8 + typeTag` with the value written at `offset`.
'use strict';
(function install(Cache, makeHandle, readInto, placePending, takePending, slabBytes) {
  const STATE = Symbol('gama-native.cache.fastPath');

  // Slabs are not zero-filled: every byte handed out is written first.
  const slab = () => Buffer.allocUnsafeSlow(slabBytes).buffer;

  function attach(cache) {
    const state = { handle: makeHandle(cache), slab: slab(), offset: 0 };
    Object.defineProperty(cache, STATE, { value: state });
    return state;
  }

  function view(s, code) {
    const length = Math.floor(code / 8);
    const offset = s.offset;
    let out;
    switch (code % 8) {
      case 0: out = new Float32Array(s.slab, offset, length); break;
      case 1: out = new Float64Array(s.slab, offset, length); break;
      case 2: out = new Int16Array(s.slab, offset, length); break;
      case 3: out = new Uint8Array(s.slab, offset, length); break;
      default: out = Buffer.from(s.slab, offset, length); break;
    }
    s.offset = (offset + out.byteLength + 7) & ~7;
    return out;
  }

  for (const name of ['getMany', 'getManyPacked']) {
    const native = Cache.prototype[name];
    Object.defineProperty(Cache.prototype, name, {
      configurable: true,
      writable: true,
      value: {
        [name](keys) {
          const joinable = Array.isArray(keys) && keys.every((k) => typeof k === 'string');
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
      const s = this[STATE] || attach(this);
      const code = readInto(s.handle, key, s.slab, s.offset);
      if (code >= 0) return view(s, code);
      if (code === -1) return undefined;
      if (code === -2) return takePending(s.handle);
      s.slab = slab();
      s.offset = 0;
      return view(s, placePending(s.handle, s.slab, 0));
    },
  });
})
