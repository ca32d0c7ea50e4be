// `npm run demo`: generated audio through native feature extraction into the
// seed's FeatureMemorySystem. Speech-like, tonal, noisy and silent clips of
// mixed lengths are analysed on the Rust thread pool (extractFeaturesBatch);
// each clip's mean log-mel spectrum becomes a stored pattern (off the V8
// heap); then a skewed stream of similarity queries runs through the
// AudioFeatureCache, and a summary table is printed.
import { AudioFeatureCache, extractFeatures, extractFeaturesBatch, type ExtractOptions } from '../index.js'
import { FeatureMemorySystem } from './feature-memory-system.js'

const SR = 16000
const CLIPS = 600
const QUERIES = 3000
const DISTINCT_QUERIES = 150
const OPTIONS: ExtractOptions = { sampleRate: SR, nFft: 512, hopLength: 160, nMels: 64, nMfcc: 13, features: ['logMel', 'mfcc'] }

/** Deterministic pseudo-random numbers (mulberry32). */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const KINDS = ['speech-like', 'tonal', 'noisy', 'silent'] as const

/** A clip of 0.5 to 3 s of one of four kinds. */
function clip(kind: (typeof KINDS)[number], rand: () => number): Float32Array {
  const y = new Float32Array(Math.round(SR * (0.5 + 2.5 * rand())))
  const f0 = 100 + 200 * rand()
  let phase = 0
  for (let i = 0; i < y.length; i++) {
    const t = i / SR
    if (kind === 'speech-like') {
      phase += (2 * Math.PI * f0 * (1 + 0.1 * Math.sin(2 * Math.PI * 4 * t))) / SR
      let v = 0
      for (let k = 1; k <= 8; k++) v += Math.sin(k * phase) / k
      y[i] = 0.3 * v * (0.5 + 0.5 * Math.sin(2 * Math.PI * 3 * t)) + 0.01 * (rand() - 0.5)
    } else if (kind === 'tonal') {
      y[i] = 0.4 * Math.sin(2 * Math.PI * f0 * 4 * t) + 0.2 * Math.sin(2 * Math.PI * f0 * 6 * t)
    } else if (kind === 'noisy') {
      y[i] = 0.3 * (rand() - 0.5)
    } else {
      y[i] = 1e-4 * (rand() - 0.5)
    }
  }
  return y
}

/** Mean over frames of a log-mel spectrogram: one 64-band vector per clip. */
function meanLogMel(logMel: { data: Float32Array; frames: number; bins: number }): Float32Array {
  const mean = new Float32Array(logMel.bins)
  for (let f = 0; f < logMel.frames; f++) for (let b = 0; b < logMel.bins; b++) mean[b] += logMel.data[f * logMel.bins + b] / logMel.frames
  return mean
}

function bar(fraction: number, width = 30): string {
  const filled = Math.round(fraction * width)
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}%`
}

function progress(label: string, done: number, total: number) {
  if (process.stdout.isTTY) process.stdout.write(`\r${label} ${bar(done / total)}${done === total ? '\n' : ''}`)
  else if (done === total) console.log(`${label} ${bar(1)}`)
}

async function main() {
  const rand = random(2026)
  const clips = Array.from({ length: CLIPS }, (_, i) => clip(KINDS[i % KINDS.length], rand))
  const audioSeconds = clips.reduce((s, c) => s + c.length / SR, 0)

  // Native feature extraction on the Rust pool, in chunks to show progress.
  const extractStart = performance.now()
  const features = []
  for (let i = 0; i < clips.length; i += 100) {
    features.push(...(await extractFeaturesBatch(clips.slice(i, i + 100), OPTIONS)))
    progress('extracting', Math.min(i + 100, clips.length), clips.length)
  }
  const extractMs = performance.now() - extractStart

  const memory = new FeatureMemorySystem()
  features.forEach((f, i) => memory.storePattern(`${KINDS[i % KINDS.length]}-${i}`, meanLogMel(f.logMel!)))

  // Queries: fresh clips of each kind, some asked again and again.
  const queries = Array.from({ length: DISTINCT_QUERIES }, (_, i) => meanLogMel(extractFeatures(clip(KINDS[i % KINDS.length], rand), OPTIONS).logMel!))
  const searchStart = performance.now()
  let correct = 0
  for (let q = 0; q < QUERIES; q++) {
    const pick = Math.floor(DISTINCT_QUERIES * rand() ** 3)
    const [best] = await memory.findSimilarPatterns(queries[pick], { topK: 1 })
    if (best?.id.startsWith(KINDS[pick % KINDS.length])) correct++
    if ((q + 1) % 300 === 0) progress('searching ', q + 1, QUERIES)
  }
  const searchMs = performance.now() - searchStart

  const stats = memory.cacheStats()
  const usage = process.memoryUsage()
  const rows: Array<[string, string]> = [
    ['clips analysed (native, batch)', `${CLIPS} clips, ${audioSeconds.toFixed(0)} s of audio in ${extractMs.toFixed(0)} ms`],
    ['audio-seconds per second', (audioSeconds / (extractMs / 1000)).toFixed(0)],
    ['patterns stored (off-heap)', `${memory.patternCount} x 64-band mean log-mel`],
    ['similarity queries', `${QUERIES} (${DISTINCT_QUERIES} distinct) at ${(QUERIES / (searchMs / 1000)).toFixed(0)}/s`],
    ['nearest pattern of the same kind', `${((correct / QUERIES) * 100).toFixed(1)}%`],
    ['result-cache hit rate', `${(stats.hitRate * 100).toFixed(1)}%`],
    ['mean native cache access', `${(stats.averageAccessTimeMs * 1000).toFixed(2)} µs`],
    ['process RSS / V8 heap used', `${(usage.rss / 2 ** 20).toFixed(1)} MiB / ${(usage.heapUsed / 2 ** 20).toFixed(1)} MiB`],
  ]
  const width = Math.max(...rows.map(([k]) => k.length))
  console.log('\ngama-native demo: features -> FeatureMemorySystem -> AudioFeatureCache')
  for (const [k, v] of rows) console.log(`  ${k.padEnd(width)}  ${v}`)
  console.log(`\n  content key of clip 0 with these options: ${AudioFeatureCache.keyFor(clips[0], { ...OPTIONS })}`)
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
