// A fixed-seed Zipf key trace and Belady's optimal hit ratio for it.
'use strict';

/** `requests` keys in [0, keys) with P(k) proportional to 1/(k+1)^skew. */
function zipfTrace({ requests, keys, skew, seed }) {
  const cdf = new Float64Array(keys);
  let sum = 0;
  for (let k = 0; k < keys; k++) {
    sum += 1 / Math.pow(k + 1, skew);
    cdf[k] = sum;
  }
  let state = seed >>> 0;
  const random = () => {
    // mulberry32
    state = (state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const trace = new Uint32Array(requests);
  for (let i = 0; i < requests; i++) {
    const u = random() * sum;
    let lo = 0;
    let hi = keys - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid] < u) lo = mid + 1;
      else hi = mid;
    }
    trace[i] = lo;
  }
  return trace;
}

/** Hit ratio of Belady's MIN: on a miss with a full cache, evict the key used furthest in the future. */
function beladyHitRatio(trace, capacity) {
  const n = trace.length;
  const nextUse = new Float64Array(n);
  const last = new Map();
  for (let i = n - 1; i >= 0; i--) {
    nextUse[i] = last.get(trace[i]) ?? Infinity;
    last.set(trace[i], i);
  }
  // Max-heap of [nextUse, key]; stale pairs are skipped when popped.
  const heapT = [];
  const heapK = [];
  const push = (t, k) => {
    let i = heapT.length;
    heapT.push(t);
    heapK.push(k);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (heapT[p] >= heapT[i]) break;
      [heapT[p], heapT[i]] = [heapT[i], heapT[p]];
      [heapK[p], heapK[i]] = [heapK[i], heapK[p]];
      i = p;
    }
  };
  const pop = () => {
    const t = heapT[0];
    const k = heapK[0];
    const lt = heapT.pop();
    const lk = heapK.pop();
    if (heapT.length) {
      heapT[0] = lt;
      heapK[0] = lk;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heapT.length && heapT[l] > heapT[m]) m = l;
        if (r < heapT.length && heapT[r] > heapT[m]) m = r;
        if (m === i) break;
        [heapT[m], heapT[i]] = [heapT[i], heapT[m]];
        [heapK[m], heapK[i]] = [heapK[i], heapK[m]];
        i = m;
      }
    }
    return [t, k];
  };
  const resident = new Map(); // key -> its next use
  let hits = 0;
  for (let i = 0; i < n; i++) {
    const k = trace[i];
    if (resident.has(k)) hits++;
    else if (resident.size >= capacity) {
      for (;;) {
        const [t, victim] = pop();
        if (resident.get(victim) === t) {
          resident.delete(victim);
          break;
        }
      }
    }
    resident.set(k, nextUse[i]);
    push(nextUse[i], k);
  }
  return hits / n;
}

module.exports = { zipfTrace, beladyHitRatio };
