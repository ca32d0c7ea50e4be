// Makes the result objects of extracted features, many at a time: for each
// result `{ name: { data, frames, bins } }`, or `{ name: data }` for a
// per-frame scalar feature, each `data` a Float32Array view of the result's
// one buffer (`buffers[r]`). `layout` holds, per result, its frame count
// and feature count, then per feature the index of its name in `names`,
// its first value's index in the buffer and its values per frame; `scalar`
// says per name whether it is a per-frame scalar. Made here, the objects
// share their hidden classes, which V8 builds far faster than
// property-by-property N-API calls.
//
// The results of a BatchProcessor batch share one buffer, each viewing its
// own range. `shared` lists those buffers. Over Rust memory they cannot be
// detached; where the runtime refuses external memory they are copies,
// which are marked untransferable here, so handing one result to a worker
// copies it (Node 20) or throws (later Node) instead of detaching the rest
// of its batch.
'use strict';
(function () {
  // Taken when the addon loads: later changes to the global do not reach here.
  const F32 = Float32Array;
  const { markAsUntransferable } = process.getBuiltinModule('node:worker_threads');
  return function featureObjects(names, scalar, buffers, layout, shared) {
    for (let b = 0; b < shared.length; b++) markAsUntransferable(shared[b]);
    const out = new Array(buffers.length);
    for (let r = 0, at = 0; r < buffers.length; r++) {
      const frames = layout[at++];
      const count = layout[at++];
      const o = {};
      for (let f = 0; f < count; f++, at += 3) {
        const name = layout[at];
        const bins = layout[at + 2];
        const data = new F32(buffers[r], layout[at + 1] * 4, frames * bins);
        o[names[name]] = scalar[name] ? data : { data, frames, bins };
      }
      out[r] = o;
    }
    return out;
  };
})()
