import { test } from 'node:test';
import assert from 'node:assert/strict';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { parseLine, regressions } = require('../benchmark/report/figures.js');

test('benchmark lines become figures with units, direction and ratios against named peers', () => {
  const speed = parseLine('batch  tiny work, 200k items: gama-native 216.4k items/s | p-queue 60.6k | piscina 19.1k | ratio 3.6x p-queue, 11.3x piscina (goal >= 10x p-queue: missed)');
  assert.equal(speed.suite, 'batch');
  assert.equal(speed.value, 216400);
  assert.equal(speed.lowerIsBetter, false);
  assert.deepEqual(speed.ratios, [
    { ratio: 3.6, versus: 'p-queue' },
    { ratio: 11.3, versus: 'piscina' },
  ]);
  const latency = parseLine('memory  sub-allocator best-fit, 1M ops: mean 322 ns | p99 501 ns (goal p99 < 2000 ns: met)');
  assert.equal(latency.value, 322);
  assert.equal(latency.lowerIsBetter, true);
  assert.equal(parseLine('# a comment'), null);
});

test('regressions flag figures more than 10% worse, in the right direction', () => {
  const base = [
    { suite: 's', label: 'speed', value: 100, lowerIsBetter: false },
    { suite: 's', label: 'latency', value: 100, lowerIsBetter: true },
    { suite: 's', label: 'steady', value: 100, lowerIsBetter: false },
  ];
  const now = [
    { suite: 's', label: 'speed', value: 85, lowerIsBetter: false },
    { suite: 's', label: 'latency', value: 115, lowerIsBetter: true },
    { suite: 's', label: 'steady', value: 95, lowerIsBetter: false },
    { suite: 's', label: 'new', value: 1, lowerIsBetter: false },
  ];
  assert.deepEqual(regressions(now, base).map((r: { label: string }) => r.label), ['speed', 'latency']);
});

test('the chart draws the scaling curve beside the ideal line and torchaudio when they ran', () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { chart } = require('../benchmark/report/chart.js');
  const curve = (values: number[]) => ({ counts: [1, 2], values, jsNsPerItem: [0, 0] });
  const results = {
    figures: [],
    machine: { summary: '2 x test cpu' },
    suites: { scaling: { batch: curve([100, 190]), processor: curve([100, 180]), measure: curve([10, 12]), torchaudio: curve([5, 9]) } },
  };
  const svg: string = chart(results);
  assert.match(svg, /Scaling: speed-up over 1 thread/);
  for (const name of ['ideal', 'extractFeaturesBatch 1.9x', 'BatchProcessor EXTRACT 1.8x', 'MEASURE 1.2x', 'torchaudio 1.8x']) assert.ok(svg.includes(name), name);
  assert.equal(svg.match(/<polyline/g)?.length, 5);
  const without = chart({ ...results, suites: {} });
  assert.match(without, /run the scaling suite/);
});
