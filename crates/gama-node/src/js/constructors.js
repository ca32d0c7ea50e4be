// Makes the exported classes behave as JS classes do when called without
// `new`: a TypeError (ERR_CONSTRUCT_CALL_REQUIRED), instead of N-API
// wrapping whatever `this` happens to be. Each class is replaced by a Proxy
// that forwards everything else (construction, subclassing, statics,
// `instanceof`) to the class itself; a class only the addon makes
// instances of refuses `new` with a TypeError (ERR_ILLEGAL_CONSTRUCTOR).
'use strict';
(function guard(exports) {
  // Classes whose instances only the addon makes.
  const madeBy = { MemoryBlock: 'GAMAMemoryManager#allocate' };
  const names = ['AudioFeatureCache', 'BatchProcessor', 'FeatureStream', 'FeatureStreams', 'GAMAMemoryManager', 'MemoryBlock', 'PerformanceProfiler'];
  for (const name of names) {
    const Class = exports[name];
    if (typeof Class !== 'function') continue;
    const traps = {
      apply() {
        const error = new TypeError(`Class constructor ${name} cannot be invoked without 'new'`);
        error.code = 'ERR_CONSTRUCT_CALL_REQUIRED';
        throw error;
      },
    };
    if (name in madeBy) {
      traps.construct = () => {
        const error = new TypeError(`${name} cannot be constructed; ${madeBy[name]} makes them`);
        error.code = 'ERR_ILLEGAL_CONSTRUCTOR';
        throw error;
      };
    }
    exports[name] = new Proxy(Class, traps);
  }
})
