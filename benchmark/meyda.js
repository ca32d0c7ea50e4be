// Meyda as the benchmarks run it: 512-sample frames every 160 samples of a
// 16 kHz clip padded by half a frame each side (as librosa centres frames),
// 64 mel bands, 13 MFCCs, Hann window.
'use strict';

const FRAME = 512;
const HOP = 160;

let meyda;
/** Meyda, configured once per thread. */
function setupMeyda() {
  if (!meyda) {
    meyda = require('meyda');
    Object.assign(meyda, { bufferSize: FRAME, sampleRate: 16000, melBands: 64, numberOfMFCCCoefficients: 13, windowingFunction: 'hanning' });
  }
  return meyda;
}

/** `features` of every frame of `y`. */
function meydaFrames(y, features) {
  const Meyda = setupMeyda();
  const padded = new Float32Array(y.length + FRAME);
  padded.set(y, FRAME / 2);
  const out = [];
  for (let start = 0; start + FRAME <= padded.length; start += HOP) {
    out.push(Meyda.extract(features, padded.subarray(start, start + FRAME)));
  }
  return out;
}

module.exports = { setupMeyda, meydaFrames };
