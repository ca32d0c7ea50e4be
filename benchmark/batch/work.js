// The work each peer runs, written once in JS: MEASURE's level meter (one
// pass: peak, RMS, mean) and Meyda's closest equivalent of EXTRACT_FEATURES
// (log-mel bands and MFCCs, 512-sample frames, hop 160, 64 mel bands).
'use strict';

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

let Meyda;
function meydaFeatures(y) {
  if (!Meyda) {
    Meyda = require('meyda');
    Object.assign(Meyda, { bufferSize: 512, sampleRate: SR, melBands: 64, numberOfMFCCCoefficients: 13, windowingFunction: 'hanning' });
  }
  const frame = 512;
  const hop = 160;
  const padded = new Float32Array(y.length + frame);
  padded.set(y, frame / 2);
  const out = [];
  for (let start = 0; start + frame <= padded.length; start += hop) {
    out.push(Meyda.extract(['mfcc', 'melBands'], padded.subarray(start, start + frame)));
  }
  return out.length;
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
