// FeatureMemorySystem from the GAMA seed, completed: pattern vectors live
// off the V8 heap in one AudioFeatureCache and search results are cached in
// another, keyed by the content of the query vector and the search options.
import { AudioFeatureCache } from '../index.js'

/** One stored pattern that resembles the query. */
export interface PatternMatch {
  id: string
  /** Cosine similarity with the query, -1 to 1. */
  score: number
}

export interface SearchOptions {
  /** Most matches returned (default 5). */
  topK?: number
  /** Least similarity a match needs (default 0). */
  minScore?: number
}

const RESULTS_TAG = 'search-results'

export class FeatureMemorySystem {
  private readonly featureCache: AudioFeatureCache
  private readonly patterns: AudioFeatureCache
  private readonly ids: string[] = []

  constructor() {
    this.featureCache = new AudioFeatureCache({
      maxEntries: 10000,
      ttl: 3600000, // 1 hour
      enableWarming: true,
    })
    this.patterns = new AudioFeatureCache({ maxEntries: 1_000_000, maxMemory: '1GB', policy: 'lru' })
  }

  /** Adds or replaces a pattern; cached search results are invalidated. */
  storePattern(id: string, features: Float32Array): void {
    if (!this.patterns.has(id)) this.ids.push(id)
    this.patterns.set(id, features)
    this.featureCache.invalidate({ tag: RESULTS_TAG })
  }

  get patternCount(): number {
    return this.ids.length
  }

  async findSimilarPatterns(featureVector: Float32Array, options: SearchOptions = {}): Promise<PatternMatch[]> {
    // Check cache first
    const cacheKey = this.generateCacheKey(featureVector, options)
    const cachedResults = this.featureCache.get(cacheKey) as PatternMatch[] | undefined

    if (cachedResults) {
      return cachedResults
    }

    // If not in cache, search in feature memory
    const results = await this.searchFeatureMemory(featureVector, options)

    // Cache results for future queries
    this.featureCache.set(cacheKey, results, { tags: [RESULTS_TAG] })

    return results
  }

  /** Hit rate and time saved of the results cache. */
  cacheStats() {
    return this.featureCache.getStats()
  }

  private generateCacheKey(featureVector: Float32Array, options: SearchOptions): string {
    return AudioFeatureCache.keyFor(featureVector, { ...options })
  }

  private async searchFeatureMemory(query: Float32Array, options: SearchOptions): Promise<PatternMatch[]> {
    const topK = options.topK ?? 5
    const minScore = options.minScore ?? 0
    const { data, width, missing } = this.patterns.getManyPacked(this.ids)
    if (width !== 0 && width !== query.length) {
      throw new RangeError(`query has ${query.length} features, stored patterns have ${width}`)
    }
    const skip = new Set(missing)
    const queryNorm = Math.hypot(...query) || 1
    const matches: PatternMatch[] = []
    for (let row = 0; row < this.ids.length; row++) {
      if (skip.has(row)) continue
      let dot = 0
      let norm = 0
      for (let i = 0, o = row * width; i < width; i++, o++) {
        dot += data[o] * query[i]
        norm += data[o] * data[o]
      }
      const score = dot / (queryNorm * (Math.sqrt(norm) || 1))
      if (score >= minScore) matches.push({ id: this.ids[row], score })
    }
    matches.sort((a, b) => b.score - a.score)
    return matches.slice(0, topK)
  }
}

/** Stores patterns, searches twice (the second search is a cache hit) and prints what happened. */
async function main() {
  const memory = new FeatureMemorySystem()
  const dims = 64
  const pattern = (seed: number) => Float32Array.from({ length: dims }, (_, i) => Math.sin((i + 1) * seed))
  for (let p = 1; p <= 1000; p++) memory.storePattern(`pattern-${p}`, pattern(p * 0.01))
  const query = pattern(0.5)
  const first = await memory.findSimilarPatterns(query, { topK: 3 })
  const again = await memory.findSimilarPatterns(query, { topK: 3 })
  console.log(`${memory.patternCount} patterns stored off the V8 heap`)
  for (const match of first) console.log(`  ${match.id}: similarity ${match.score.toFixed(4)}`)
  const stats = memory.cacheStats()
  console.log(`second search served from the results cache: ${JSON.stringify(again) === JSON.stringify(first)} (hits ${stats.hits}, misses ${stats.misses})`)
}

if (process.argv[1] && /feature-memory-system\.ts$/.test(process.argv[1])) {
  main().catch((err) => {
    console.error(err)
    process.exit(1)
  })
}
