// The work each peer runs, written once in JS: MEASURE's level meter (one
// pass: peak, RMS, mean) and Meyda's closest equivalent of EXTRACT_FEATURES
// (log-mel bands and MFCCs, 512-sample frames, hop 160, 64 mel bands).
'use strict';

const { meydaFrames } = require('../meyda.js');

const SR = 16000;

function measure(y) {
  let peak = 0;
  let sum = 0;
  let squares = 0;
  for (let i = 0; i < y.length; i++) {
    const x = y[i];
    const a = x < 0 ? -x : x;
    if (a > peak) peak = a;
    sum += x;
    squares += x * x;
  }
  return { peak, rms: Math.sqrt(squares / y.length), mean: sum / y.length };
}

function meydaFeatures(y) {
  return meydaFrames(y, ['mfcc', 'melBands']).length;
}

/** Deterministic noise-like clips of `seconds` at 16 kHz. */
function clips(count, samples, seed = 7) {
  let s = seed >>> 0;
  return Array.from({ length: count }, () => {
    const y = new Float32Array(samples);
    for (let i = 0; i < y.length; i++) {
      s = (s * 1664525 + 1013904223) >>> 0;
      y[i] = (s / 4294967296 - 0.5) * 0.2;
    }
    return y;
  });
}

module.exports = { SR, measure, meydaFeatures, clips };
