// The JS side of feature streams: each FeatureStream is an EventEmitter
// ('error', 'drain', 'end'), an async iterable and a source of Node
// Readables; FeatureStreams makes Transforms. The native side calls the
// functions returned here from its drain (on the JS thread) as frames and
// ends arrive; frames not taken by an `onFrames` callback wait in a queue
// until a Readable (or an iterator, which reads one) asks for them.
'use strict';
(function install(exports, consumed) {
  const getBuiltin = process.getBuiltinModule;
  if (typeof getBuiltin !== 'function') {
    throw new Error('gama-native needs Node >= 20.16 (process.getBuiltinModule) for FeatureStreams');
  }
  const { EventEmitter } = getBuiltin('node:events');
  const { Readable, Transform } = getBuiltin('node:stream');
  const { FeatureStream, FeatureStreams } = exports;
  const kState = Symbol('featureStream');

  function coded(Kind, code, message, extra) {
    const error = new Kind(message);
    error.code = code;
    return Object.assign(error, extra);
  }

  // Native classes gain EventEmitter's methods; `init` runs its constructor.
  Object.setPrototypeOf(FeatureStream.prototype, EventEmitter.prototype);
  Object.defineProperty(FeatureStream.prototype, Symbol.asyncIterator, {
    configurable: true,
    writable: true,
    value: function asyncIterator() {
      return this.readable()[Symbol.asyncIterator]();
    },
  });
  Object.defineProperty(FeatureStream.prototype, 'readable', {
    configurable: true,
    writable: true,
    value: function readable(options) {
      return makeReadable(this, options);
    },
  });
  Object.defineProperty(FeatureStreams.prototype, 'transform', {
    configurable: true,
    writable: true,
    value: function transform(utteranceId, options) {
      return makeTransform(this, utteranceId, options);
    },
  });

  // Called once per stream, before it is handed out. `layout` lists the
  // features of every block's buffer in order as [name, bins, scalar];
  // with a `cache`, the whole utterance's features go into it under
  // `cacheKey` when the stream is finalized. (`consumed(stream, frames)`
  // tells the native side that queued frames were taken.)
  function init(stream, utteranceId, layout, onFrames, cache, cacheKey) {
    EventEmitter.call(stream);
    stream[kState] = {
      utteranceId,
      layout,
      build: builder(layout),
      cache,
      cacheKey,
      onFrames,
      consumed: (frames) => consumed(stream, frames),
      queue: [],
      readable: null,
      wantMore: false,
      outcome: null,
      waiters: [],
      finalizeAsked: false,
      firstError: null,
      callbackErrors: 0,
    };
  }

  function state(stream) {
    const st = stream[kState];
    if (st === undefined) throw coded(TypeError, 'ERR_INVALID_THIS', 'not a FeatureStream made by FeatureStreams.start');
    return st;
  }

  // A function making the block objects of one layout as one object
  // literal (one shape, so V8 builds them fast), made once per layout.
  // `layout` holds known feature names and whole numbers only.
  const builders = new Map();
  function builder(layout) {
    const key = JSON.stringify(layout);
    let make = builders.get(key);
    if (make === undefined) {
      const fields = [];
      let offset = 'offset';
      const lets = [];
      layout.forEach(([name, bins, scalar], i) => {
        const view = `new Float32Array(buffer, ${offset} * 4, frames * ${bins})`;
        fields.push(scalar ? `${name}: ${view}` : `${name}: { data: ${view}, frames, bins: ${bins} }`);
        lets.push(`const o${i + 1} = ${offset} + frames * ${bins}`);
        offset = `o${i + 1}`;
      });
      const body = `${lets.join('; ')}; return { utteranceId, firstFrame, frames, ${fields.join(', ')} };`;
      make = new Function('buffer', 'offset', 'utteranceId', 'firstFrame', 'frames', body);
      builders.set(key, make);
    }
    return make;
  }

  // New frames: `frames` rows of every feature, one after the other in
  // `buffer` from float `offset` (made into views here, where V8 builds
  // objects fastest; the buffer is shared by the blocks of one drain).
  function deliver(stream, buffer, offset, firstFrame, frames) {
    const st = stream[kState];
    const block = st.build(buffer, offset, st.utteranceId, firstFrame, frames);
    if (st.onFrames !== null) {
      try {
        st.onFrames(block);
      } catch (error) {
        callbackError(stream, st, error);
      }
      return;
    }
    st.queue.push(block);
    feed(st);
  }

  // The first error an onFrames callback throws goes to 'error' listeners,
  // or else to finalize()'s promise; later ones are counted in the summary.
  function callbackError(stream, st, error) {
    st.callbackErrors += 1;
    if (st.callbackErrors > 1) return;
    const wrapped = coded(Error, 'E_CALLBACK', `onFrames of utterance '${st.utteranceId}' threw: ${error && error.message}`, { cause: error });
    if (stream.listenerCount('error') > 0) {
      stream.emit('error', wrapped);
    } else {
      st.firstError = wrapped;
    }
  }

  // Moves queued frames into the Readable while it wants more, and ends it
  // once the stream has ended and the queue is empty.
  function feed(st) {
    const r = st.readable;
    if (r === null || r.destroyed) return;
    let taken = 0;
    while (st.wantMore && st.queue.length > 0) {
      const block = st.queue.shift();
      taken += block.frames;
      st.wantMore = r.push(block);
    }
    if (taken > 0) st.consumed(taken);
    if (st.queue.length === 0 && st.outcome !== null) {
      if (st.outcome.error) r.destroy(st.outcome.error);
      else r.push(null);
    }
  }

  // The stream ended: summary or error (an AbortError when aborted);
  // `whole`: with a cache, the whole utterance's features as
  // extractFeatures gives them (joined and floored natively).
  function end(stream, summary, error, whole) {
    const st = stream[kState];
    if (st.outcome !== null) return;
    if (summary && st.cache !== null) {
      try {
        if (whole === undefined) throw new Error('its features could not be made into JS values');
        st.cache.set(st.cacheKey, whole);
        summary.cacheKey = st.cacheKey;
      } catch (cause) {
        const failed = coded(Error, 'E_CACHE', `the features of utterance '${st.utteranceId}' could not be cached: ${cause && cause.message}`, { cause });
        if (stream.listenerCount('error') > 0) stream.emit('error', failed);
        else process.emitWarning(failed);
      }
    }
    if (summary) summary.callbackErrors = st.callbackErrors;
    let outcome = { summary, error };
    if (!error && st.firstError !== null) {
      if (st.finalizeAsked) {
        outcome = { summary, error: Object.assign(st.firstError, { summary }) };
      } else {
        process.emitWarning(st.firstError);
      }
      st.firstError = null;
    }
    st.outcome = outcome;
    for (const { resolve, reject } of st.waiters.splice(0)) {
      if (outcome.error) reject(outcome.error);
      else resolve(summary);
    }
    feed(st);
    if (st.readable === null && error && error.code !== 'ABORT_ERR' && stream.listenerCount('error') > 0) {
      stream.emit('error', error);
    }
    if (summary) stream.emit('end', summary);
  }

  // finalize()'s promise: the summary once the last frames are out.
  function settled(stream) {
    const st = state(stream);
    st.finalizeAsked = true;
    if (st.outcome !== null) {
      const { summary, error } = st.outcome;
      return error ? Promise.reject(error) : Promise.resolve(summary);
    }
    return new Promise((resolve, reject) => st.waiters.push({ resolve, reject }));
  }

  function drain(stream) {
    stream.emit('drain');
  }

  function makeReadable(stream, options) {
    const st = state(stream);
    if (st.onFrames !== null || st.readable !== null) {
      throw coded(Error, 'E_STREAM_CONSUMED', `the frames of utterance '${st.utteranceId}' go to ${st.onFrames !== null ? 'its onFrames callback' : 'another reader'}: a stream has one consumer`);
    }
    const known = ['highWaterMark'];
    if (options !== undefined && (options === null || typeof options !== 'object')) {
      throw coded(TypeError, 'ERR_INVALID_ARG_TYPE', 'options must be an object');
    }
    for (const key of Object.keys(options ?? {})) {
      if (!known.includes(key)) throw coded(TypeError, 'ERR_INVALID_ARG_VALUE', `options.${key} is not a known option (known: ${known.join(', ')})`);
    }
    const highWaterMark = options?.highWaterMark ?? 16;
    if (!Number.isInteger(highWaterMark) || highWaterMark < 1) {
      throw coded(RangeError, 'ERR_OUT_OF_RANGE', `options.highWaterMark must be a whole number >= 1; got ${highWaterMark}`);
    }
    st.readable = new Readable({
      objectMode: true,
      highWaterMark,
      read() {
        st.wantMore = true;
        feed(st);
      },
      destroy(error, callback) {
        // A reader that stops early (a `break` out of `for await`) ends
        // the stream, as destroying a socket's Readable closes it.
        if (st.outcome === null) stream.abort();
        callback(error);
      },
    });
    return st.readable;
  }

  function makeTransform(streams, utteranceId, options) {
    if (!(streams instanceof FeatureStreams)) throw coded(TypeError, 'ERR_INVALID_THIS', 'transform() must be called on a FeatureStreams');
    const known = ['options', 'topDbReference', 'highWaterMark', 'cacheKey'];
    if (options !== undefined && (options === null || typeof options !== 'object')) {
      throw coded(TypeError, 'ERR_INVALID_ARG_TYPE', 'options must be an object');
    }
    for (const key of Object.keys(options ?? {})) {
      if (!known.includes(key)) throw coded(TypeError, 'ERR_INVALID_ARG_VALUE', `options.${key} is not a known option (known: ${known.join(', ')})`);
    }
    const { highWaterMark, ...startOptions } = options ?? {};
    let stream = null;
    const transform = new Transform({
      writableObjectMode: true,
      readableObjectMode: true,
      readableHighWaterMark: highWaterMark ?? 16,
      transform(chunk, _encoding, callback) {
        let ok;
        try {
          ok = stream.push(chunk);
        } catch (error) {
          callback(error);
          return;
        }
        if (ok) callback();
        else stream.once('drain', () => callback());
      },
      flush(callback) {
        stream.finalize().then(() => callback(), callback);
      },
      destroy(error, callback) {
        if (stream[kState].outcome === null) stream.abort();
        callback(error);
      },
    });
    stream = streams.start(utteranceId, { ...startOptions, onFrames: (block) => transform.push(block) });
    return transform;
  }

  return { init, deliver, end, settled, drain };
});
