// MemoryBlock, and the fast path of GAMAMemoryManager#allocate and
// #tryAllocate, installed over the native class when the addon loads.
//
// A native class instance per block (napi_wrap, a reference, a type tag and
// a finalizer) cost about 3 µs of a 3.7 µs allocate + release, ten times
// the pool itself. So a block is a JS object: it holds its manager's handle,
// the key of its lease in the manager's native table (memory/block.rs), its
// reference count and what allocate was told. Native code is called only to
// allocate, for the last release and for view/copyFrom/copyTo.
//
// A block collected without its last release is counted as a leak: a
// FinalizationRegistry per manager hands its lease record to `collect`,
// which returns the lease (a view still reachable keeps its memory until it
// is collected too). The last release marks the record instead of
// unregistering the block (an unregister token costs more than the pool):
// the registry then skips it.
//
// allocate takes plain arguments here (a whole number of bytes, options
// absent or a plain object of known keys with values of the right type) and
// hands anything else, every bad input included, to the native method,
// which checks it, names what is wrong, and calls `adopt` for the block.
'use strict';
(function install(Manager, MemoryBlock, makeHandle, allocate, release, collect, view, copyFrom, copyTo, maxSize) {
  const nativeAllocate = Manager.prototype.allocate;
  const nativeTryAllocate = Manager.prototype.tryAllocate;
  const states = new WeakMap();

  function attach(manager) {
    const handle = makeHandle(manager);
    const state = {
      handle,
      // The operation native code keeps for `allocate` calls that pass
      // undefined (strings cost a conversion each); both start at 'general'.
      operation: 'general',
      registry: new FinalizationRegistry((lease) => {
        if (lease.key >= 0) collect(handle, lease.key);
      }),
    };
    states.set(manager, state);
    return state;
  }

  function releasedError(what) {
    const error = new Error(`${what}: the block was released (refCount is 0)`);
    error.code = 'E_RELEASED';
    return error;
  }

  function invalidThis(what) {
    const error = new TypeError(`MemoryBlock.prototype.${what} called on an object that is not a MemoryBlock`);
    error.code = 'ERR_INVALID_THIS';
    return error;
  }

  class Block {
    #state;
    // { key }: the key of its lease in the native table; -1 once released.
    #lease;
    #refs = 1;
    #bytes;
    #gpu;
    #operation;
    #tag;

    constructor(state, key, bytes, gpu, operation, tag) {
      this.#state = state;
      this.#lease = { key };
      this.#bytes = bytes;
      this.#gpu = gpu;
      this.#operation = operation;
      this.#tag = tag;
      state.registry.register(this, this.#lease);
    }

    static {
      // Blocks are MemoryBlocks: instanceof, constructor and inspection
      // name the exported class.
      Object.setPrototypeOf(Block.prototype, MemoryBlock.prototype);
      delete Block.prototype.constructor;

      const own = (block, what) => {
        if (block === null || typeof block !== 'object' || !(#lease in block)) throw invalidThis(what);
        return block;
      };
      const live = (block, what) => {
        if (own(block, what).#refs === 0) throw releasedError(what);
        return block;
      };
      const getter = (name, get) => ({ configurable: true, enumerable: false, get: { [name]: get }[name] });
      const method = (name, value) => ({ configurable: true, enumerable: false, writable: true, value: { [name]: value }[name] });

      Object.defineProperties(MemoryBlock.prototype, {
        // Bytes requested.
        bytes: getter('bytes', function () { return own(this, 'bytes').#bytes; }),
        // 'host' or 'gpu'.
        device: getter('device', function () { return own(this, 'device').#gpu ? 'gpu' : 'host'; }),
        // The operation it was allocated for.
        operation: getter('operation', function () { return own(this, 'operation').#operation; }),
        // The tag given to allocate, or null.
        tag: getter('tag', function () { return own(this, 'tag').#tag; }),
        // Holders left; 0 once released.
        refCount: getter('refCount', function () { return own(this, 'refCount').#refs; }),
        // Whether the last reference was released.
        released: getter('released', function () { return own(this, 'released').#refs === 0; }),
        retain: method('retain', function () {
          return ++live(this, 'retain').#refs;
        }),
        release: method('release', function () {
          const block = live(this, 'release');
          if (--block.#refs === 0) {
            const key = block.#lease.key;
            block.#lease.key = -1;
            release(block.#state.handle, key);
          }
          return block.#refs;
        }),
        view: method('view', function (type) {
          const block = live(this, 'view');
          return view(block.#state.handle, block.#lease.key, type);
        }),
        copyFrom: method('copyFrom', function (source, offset) {
          const block = live(this, 'copyFrom');
          copyFrom(block.#state.handle, block.#lease.key, source, offset);
        }),
        copyTo: method('copyTo', function (target, offset) {
          const block = live(this, 'copyTo');
          copyTo(block.#state.handle, block.#lease.key, target, offset);
        }),
      });
    }
  }

  // The block for plain arguments; null when `orNull` and the budget has no
  // room; undefined when the arguments are for the native method to check.
  function fast(manager, size, options, orNull) {
    if (typeof size !== 'number' || !(size >= 1 && size <= maxSize) || Math.floor(size) !== size) return undefined;
    let operation = 'general';
    let gpu = false;
    let tag = null;
    if (options !== undefined && options !== null) {
      if (typeof options !== 'object' || Object.getPrototypeOf(options) !== Object.prototype) return undefined;
      for (const key in options) {
        if (key !== 'operation' && key !== 'device' && key !== 'tag') return undefined;
      }
      const o = options.operation;
      if (typeof o === 'string') operation = o;
      else if (o != null) return undefined;
      const d = options.device;
      if (d === 'gpu' || d === 'cuda') gpu = true;
      else if (d != null && d !== 'host' && d !== 'cpu') return undefined;
      const t = options.tag;
      if (typeof t === 'string') tag = t;
      else if (t != null) return undefined;
    }
    const state = states.get(manager) || attach(manager);
    // Native code keeps a string passed before anything can fail.
    const passed = operation === state.operation ? undefined : operation;
    state.operation = operation;
    const key = allocate(state.handle, size, gpu, passed, orNull);
    return key < 0 ? null : new Block(state, key, size, gpu, operation, tag);
  }

  // allocate and tryAllocate take the fast path, else their native method.
  const fastOr = (name, native, orNull) => ({
    configurable: true,
    writable: true,
    value: {
      [name](size, options) {
        const block = fast(this, size, options, orNull);
        return block !== undefined ? block : native.call(this, size, options);
      },
    }[name],
  });
  Object.defineProperties(Manager.prototype, {
    allocate: fastOr('allocate', nativeAllocate, false),
    tryAllocate: fastOr('tryAllocate', nativeTryAllocate, true),
  });

  // adopt(manager, key, bytes, gpu, operation, tag): the block of a key the
  // native allocate inserted into the manager's table.
  return function adopt(manager, key, bytes, gpu, operation, tag) {
    return new Block(states.get(manager) || attach(manager), key, bytes, gpu, operation, tag);
  };
})
