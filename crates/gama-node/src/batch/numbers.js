// Makes the plain number objects of a drained chunk of results in one call:
// `values` holds `keys.length` numbers per object, in order. Made here,
// the objects share one hidden class per key list, which V8 builds far
// faster than property-by-property N-API calls.
'use strict';
(function numberObjects(keys, values) {
  const width = keys.length;
  const out = new Array(values.length / width);
  for (let i = 0, j = 0; i < out.length; i++, j += width) {
    const o = {};
    for (let k = 0; k < width; k++) o[keys[k]] = values[j + k];
    out[i] = o;
  }
  return out;
})
