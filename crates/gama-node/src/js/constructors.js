// Makes the exported classes behave as JS classes do when called without
// `new`: a TypeError (ERR_CONSTRUCT_CALL_REQUIRED), instead of N-API
// wrapping whatever `this` happens to be. Each class is replaced by a Proxy
// that forwards everything else (construction, subclassing, statics,
// `instanceof`) to the class itself.
'use strict';
(function guard(exports) {
  const names = ['AudioFeatureCache', 'BatchProcessor', 'FeatureStream', 'FeatureStreams', 'GAMAMemoryManager', 'MemoryBlock', 'PerformanceProfiler'];
  for (const name of names) {
    const Class = exports[name];
    if (typeof Class !== 'function') continue;
    exports[name] = new Proxy(Class, {
      apply() {
        const error = new TypeError(`Class constructor ${name} cannot be invoked without 'new'`);
        error.code = 'ERR_CONSTRUCT_CALL_REQUIRED';
        throw error;
      },
    });
  }
})
