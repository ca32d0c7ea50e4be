// An SVG chart of a benchmark run: on the left, gama-native against each
// peer (speed-up ratios on a log scale); on the right, the batch-size curve
// (throughput, peak memory and CPU for maxBatchSize 1, 4, 8, 16) and the
// scaling curve (speed-up over one thread at 1, 2, 4, ... threads, beside
// the ideal line and torchaudio's curve when it ran).
'use strict';

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function ratioBars(figures, x0, y0, width) {
  const rows = [];
  for (const f of figures) {
    for (const r of f.ratios) {
      if (!r.versus || /goal/.test(r.versus)) continue;
      // Where less is better (memory, time), the bar shows how many times less.
      const ratio = f.lowerIsBetter ? Number((1 / r.ratio).toPrecision(3)) : r.ratio;
      rows.push({ label: `${f.suite}: ${f.label.slice(0, 36)}${f.lowerIsBetter ? ' (less)' : ''} vs ${r.versus}`, ratio });
    }
  }
  const shown = rows.slice(0, 16);
  const maxLog = Math.max(1, ...shown.map((r) => Math.log10(Math.max(r.ratio, 1))));
  const minLog = Math.min(0, ...shown.map((r) => Math.log10(Math.min(r.ratio, 1))));
  const span = maxLog - minLog || 1;
  const barX = x0 + 330;
  const barW = width - 380;
  const zero = barX + ((0 - minLog) / span) * barW;
  let svg = `<text x="${x0}" y="${y0}" font-size="15" font-weight="bold">gama-native vs peers (times better, log scale; 1x = same)</text>`;
  svg += `<line x1="${zero}" y1="${y0 + 12}" x2="${zero}" y2="${y0 + 18 + shown.length * 22}" stroke="#888" stroke-dasharray="3,3"/>`;
  shown.forEach((r, i) => {
    const y = y0 + 20 + i * 22;
    const end = barX + ((Math.log10(r.ratio) - minLog) / span) * barW;
    const [x, w] = end >= zero ? [zero, end - zero] : [end, zero - end];
    const colour = r.ratio >= 1 ? '#2b8a3e' : '#c92a2a';
    svg += `<text x="${x0}" y="${y + 12}" font-size="11">${esc(r.label)}</text>`;
    svg += `<rect x="${x}" y="${y}" width="${Math.max(w, 1)}" height="15" fill="${colour}"/>`;
    svg += `<text x="${Math.max(end, zero) + 4}" y="${y + 12}" font-size="11">${r.ratio}x</text>`;
  });
  return { svg, height: 30 + shown.length * 22 };
}

function batchCurve(sizes, x0, y0, width, height) {
  let svg = `<text x="${x0}" y="${y0}" font-size="15" font-weight="bold">Batch size: throughput, memory, CPU</text>`;
  if (!sizes?.length) return svg + `<text x="${x0}" y="${y0 + 30}" font-size="12">(run the batch suite)</text>`;
  const px = (i) => x0 + 40 + (i / (sizes.length - 1 || 1)) * (width - 80);
  const top = y0 + 25;
  const h = height - 70;
  const series = [
    { key: 'clipsPerSec', name: 'clips/s', colour: '#1c7ed6' },
    { key: 'peakRssMiB', name: 'peak RSS MiB', colour: '#e8590c' },
    { key: 'cpuPercent', name: 'CPU %', colour: '#5f3dc4' },
  ];
  svg += `<rect x="${x0 + 40}" y="${top}" width="${width - 80}" height="${h}" fill="none" stroke="#ccc"/>`;
  series.forEach((s, k) => {
    const values = sizes.map((r) => r[s.key]);
    const max = Math.max(...values) * 1.1 || 1;
    const points = values.map((v, i) => `${px(i)},${top + h - (v / max) * h}`).join(' ');
    svg += `<polyline points="${points}" fill="none" stroke="${s.colour}" stroke-width="2.5"/>`;
    values.forEach((v, i) => {
      svg += `<circle cx="${px(i)}" cy="${top + h - (v / max) * h}" r="3.5" fill="${s.colour}"/>`;
      svg += `<text x="${px(i) + 5}" y="${top + h - (v / max) * h - 5}" font-size="10" fill="${s.colour}">${v >= 1000 ? (v / 1000).toFixed(1) + 'k' : v.toFixed(0)}</text>`;
    });
    svg += `<text x="${x0 + 40 + k * 120}" y="${top + h + 40}" font-size="12" fill="${s.colour}">— ${s.name}</text>`;
  });
  sizes.forEach((r, i) => (svg += `<text x="${px(i) - 4}" y="${top + h + 18}" font-size="12">${r.maxBatchSize}</text>`));
  return svg;
}

function scalingCurve(scaling, x0, y0, width, height) {
  let svg = `<text x="${x0}" y="${y0}" font-size="15" font-weight="bold">Scaling: speed-up over 1 thread</text>`;
  if (!scaling?.batch) return svg + `<text x="${x0}" y="${y0 + 30}" font-size="12">(run the scaling suite)</text>`;
  const counts = scaling.batch.counts;
  const series = [
    { name: 'ideal', values: counts, colour: '#adb5bd', dash: '4,4' },
    { name: 'extractFeaturesBatch', values: scaling.batch.values.map((v) => v / scaling.batch.values[0]), colour: '#1c7ed6' },
    { name: 'BatchProcessor EXTRACT', values: scaling.processor.values.map((v) => v / scaling.processor.values[0]), colour: '#2b8a3e' },
    { name: 'MEASURE', values: scaling.measure.values.map((v) => v / scaling.measure.values[0]), colour: '#e8590c' },
  ];
  if (scaling.torchaudio) series.push({ name: 'torchaudio', values: scaling.torchaudio.values.map((v) => v / scaling.torchaudio.values[0]), colour: '#5f3dc4' });
  const top = y0 + 25;
  const h = height - 70;
  const maxX = counts.at(-1);
  const maxY = Math.max(...series.flatMap((s) => s.values)) * 1.1;
  const px = (t) => x0 + 40 + ((t - 1) / (maxX - 1 || 1)) * (width - 80);
  const py = (v) => top + h - (v / maxY) * h;
  svg += `<rect x="${x0 + 40}" y="${top}" width="${width - 80}" height="${h}" fill="none" stroke="#ccc"/>`;
  series.forEach((s, k) => {
    const points = s.values.map((v, i) => `${px(counts[i])},${py(v)}`).join(' ');
    svg += `<polyline points="${points}" fill="none" stroke="${s.colour}" stroke-width="2.5"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''}/>`;
    if (!s.dash) s.values.forEach((v, i) => (svg += `<circle cx="${px(counts[i])}" cy="${py(v)}" r="3" fill="${s.colour}"/>`));
    svg += `<text x="${x0 + 40 + (k % 2) * 160}" y="${top + h + 36 + Math.floor(k / 2) * 15}" font-size="11" fill="${s.colour}">— ${esc(s.name)}${s.dash ? '' : ` ${s.values.at(-1).toFixed(1)}x`}</text>`;
  });
  counts.forEach((t) => (svg += `<text x="${px(t) - 4}" y="${top + h + 16}" font-size="11">${t}</text>`));
  return svg;
}

/** The whole chart as an SVG document. */
function chart(results) {
  const width = 1100;
  const left = ratioBars(results.figures, 20, 30, 700);
  const height = Math.max(left.height + 60, 700);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
${left.svg}
${batchCurve(results.suites?.batch?.batchSizes, 730, 30, 360, 300)}
${scalingCurve(results.suites?.scaling, 730, 360, 360, 320)}
<text x="20" y="${height - 12}" font-size="11" fill="#555">${esc(results.machine.summary)}</text>
</svg>
`;
}

module.exports = { chart };
