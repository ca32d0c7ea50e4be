// Two workloads compared in one process on a shared machine: separate
// best-of runs catch the two at different loads, so they run in pairs, the
// order within each pair alternating, and each pair gives the ratio of the
// two throughputs; the median ratio is the comparison.
'use strict';

/**
 * Runs `a` and `b` (each `[items, run]`) in `pairs` alternating pairs:
 * the median of the pairs' ratios of a's items per second to b's, and
 * each side's best items per second.
 */
async function paired(pairs, a, b) {
  const sides = { a, b };
  const best = { a: 0, b: 0 };
  const ratios = [];
  for (let p = 0; p < pairs; p++) {
    const rate = {};
    for (const side of p % 2 ? ['b', 'a'] : ['a', 'b']) {
      const [items, run] = sides[side];
      const started = process.hrtime.bigint();
      await run();
      rate[side] = items / (Number(process.hrtime.bigint() - started) / 1e9);
      best[side] = Math.max(best[side], rate[side]);
    }
    ratios.push(rate.a / rate.b);
  }
  ratios.sort((x, y) => x - y);
  return { ratio: ratios[ratios.length >> 1], best, pairs };
}

module.exports = { paired };
