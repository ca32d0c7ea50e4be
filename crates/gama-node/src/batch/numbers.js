// Makes the plain number objects of a drained chunk of results in one call:
// `values` holds `keys.length` numbers per object, in order. Made here,
// the objects share one hidden class per key list, which V8 builds far
// faster than property-by-property N-API calls.
//
// `slots` holds two numbers per object: the index in `targets` of the
// results array of the `addItems` call it belongs to, and its index there
// (-1, -1: the object is returned at its index of the array returned, for
// its own promise). Placing them here saves two N-API calls per result.
'use strict';
(function numberObjects(keys, values, targets, slots) {
  const width = keys.length;
  const out = new Array(values.length / width);
  for (let i = 0, j = 0; i < out.length; i++, j += width) {
    const o = {};
    for (let k = 0; k < width; k++) o[keys[k]] = values[j + k];
    const target = slots[2 * i];
    if (target < 0) out[i] = o;
    else targets[target][slots[2 * i + 1]] = o;
  }
  return out;
})
