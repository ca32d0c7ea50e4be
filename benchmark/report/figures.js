// Turns the benchmark's printed lines into figures: the gama-native value of
// each line (with its unit and whether lower is better) and the ratios
// against peers, for the JSON results, the baseline comparison and the chart.
'use strict';

const SCALE = { k: 1e3, M: 1e6 };
const LOWER_IS_BETTER = new Set(['ns', 'ms', 'µs', 'MiB']);

/** `{ suite, label, text, value, unit, lowerIsBetter, ratios }` of one line, or null. */
function parseLine(line) {
  const m = /^(\w+)\s+(.+?): (.*)$/.exec(line);
  if (!m) return null;
  const [, suite, label, text] = m;
  const v = /gama-native(?: [A-Za-z][\w-]*)? ([0-9.]+)([kM]?)(?: ([a-zµA-Z/%-]+))?/.exec(text) ?? /^(?:[^|]*? )?([0-9.]+)([kM]?)(?: ([a-zµA-Z/%-]+))?/.exec(text);
  const value = v ? Number(v[1]) * (SCALE[v[2]] ?? 1) : null;
  const unit = v?.[3] ?? '';
  const segments = text.replace(/\(goal[^)]*\)/g, '').split('|').map((x) => x.trim());
  const firstPeer = /^(.+?) [0-9.]+[kM]?\b/.exec(segments[1] ?? '')?.[1] ?? '';
  const ratios = [];
  for (const seg of segments) {
    const vs = /^vs (.+?) ([0-9.]+)x$/.exec(seg);
    if (vs) ratios.push({ ratio: Number(vs[2]), versus: vs[1] });
    const r = /^ratio (.+)$/.exec(seg);
    if (r) {
      for (const m of r[1].matchAll(/([0-9.]+)x(?: ([A-Za-z][\w+.-]*(?: [A-Za-z][\w+.-]*)?))?/g)) {
        ratios.push({ ratio: Number(m[1]), versus: (m[2] ?? firstPeer).replace(/,$/, '') });
      }
    }
  }
  return { suite, label, text, value, unit, lowerIsBetter: LOWER_IS_BETTER.has(unit), ratios: ratios.filter((x) => Number.isFinite(x.ratio) && x.ratio > 0) };
}

/** Figures of `current` that are more than `tolerance` worse than in `baseline`. */
function regressions(current, baseline, tolerance = 0.1) {
  const before = new Map(baseline.map((f) => [`${f.suite}|${f.label}`, f]));
  const out = [];
  for (const f of current) {
    const b = before.get(`${f.suite}|${f.label}`);
    if (!b || f.value == null || b.value == null || b.value === 0) continue;
    const change = f.lowerIsBetter ? b.value / f.value - 1 : f.value / b.value - 1;
    if (change < -tolerance) out.push({ ...f, baseline: b.value, change });
  }
  return out;
}

module.exports = { parseLine, regressions };
