// `npm run demo`: the seed's FeatureMemorySystem over feature-sized vectors.
// Stores synthetic 128-band spectral patterns, answers a skewed stream of
// similarity queries through the AudioFeatureCache, and prints a summary.
import { AudioFeatureCache } from '../index.js'
import { FeatureMemorySystem } from './feature-memory-system.js'

const PATTERNS = 2000
const QUERIES = 3000
const DISTINCT_QUERIES = 400
const BANDS = 128

/** Deterministic pseudo-random numbers (mulberry32). */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A mel-band-like vector: a few spectral peaks over a sloping floor. */
function spectrum(rand: () => number): Float32Array {
  const v = new Float32Array(BANDS)
  const peaks = Array.from({ length: 3 }, () => rand() * BANDS)
  for (let b = 0; b < BANDS; b++) {
    let e = 0.05 * (1 - b / BANDS)
    for (const p of peaks) e += Math.exp(-((b - p) ** 2) / 18)
    v[b] = e + 0.02 * rand()
  }
  return v
}

function bar(fraction: number, width = 30): string {
  const filled = Math.round(fraction * width)
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}%`
}

async function main() {
  const rand = random(2026)
  const memory = new FeatureMemorySystem()
  const started = performance.now()
  for (let i = 0; i < PATTERNS; i++) memory.storePattern(`pattern-${i}`, spectrum(rand))
  const storeMs = performance.now() - started

  const queries = Array.from({ length: DISTINCT_QUERIES }, () => spectrum(rand))
  const searchStart = performance.now()
  for (let q = 0; q < QUERIES; q++) {
    // Skewed: a few queries recur often, as in interactive pattern browsing.
    const pick = Math.floor(DISTINCT_QUERIES * rand() ** 3)
    await memory.findSimilarPatterns(queries[pick], { topK: 5 })
    const every = process.stdout.isTTY ? 100 : QUERIES / 4
    if ((q + 1) % every === 0) process.stdout.write(`${process.stdout.isTTY ? '\r' : ''}searching ${bar((q + 1) / QUERIES)}${process.stdout.isTTY ? '' : '\n'}`)
  }
  const searchMs = performance.now() - searchStart
  process.stdout.write('\n\n')

  const stats = memory.cacheStats()
  const top = await memory.findSimilarPatterns(queries[0], { topK: 3 })
  const usage = process.memoryUsage()
  const rows: Array<[string, string]> = [
    ['patterns stored (off-heap)', `${PATTERNS} x ${BANDS} floats in ${storeMs.toFixed(1)} ms`],
    ['queries answered', `${QUERIES} (${DISTINCT_QUERIES} distinct)`],
    ['queries per second', (QUERIES / (searchMs / 1000)).toFixed(0)],
    ['result-cache hit rate', `${(stats.hitRate * 100).toFixed(1)}%`],
    ['mean native cache access', `${(stats.averageAccessTimeMs * 1000).toFixed(2)} µs`],
    ['result-cache bytes', `${stats.bytes} of ${stats.maxBytes}`],
    ['process RSS / V8 heap used', `${(usage.rss / 2 ** 20).toFixed(1)} MiB / ${(usage.heapUsed / 2 ** 20).toFixed(1)} MiB`],
    ['best match for query 0', top.map((m) => `${m.id} (${m.score.toFixed(3)})`).join(', ')],
  ]
  const width = Math.max(...rows.map(([k]) => k.length))
  console.log('gama-native demo: FeatureMemorySystem over AudioFeatureCache')
  for (const [k, v] of rows) console.log(`  ${k.padEnd(width)}  ${v}`)

  // The stable content key users cache extracted features under.
  console.log(`\n  keyFor(query 0, { nFft: 512 }) = ${AudioFeatureCache.keyFor(queries[0], { nFft: 512 })}`)
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
