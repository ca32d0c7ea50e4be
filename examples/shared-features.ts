// `npm run demo -- --redis [URL]`: two processes sharing features through
// Redis, the AudioFeatureCache's second tier. This process extracts
// features of a set of clips through getOrCompute; a second process then
// asks for the same clips and gets every one from Redis without computing;
// finally the second process invalidates one speaker's clips by tag, and
// this process's in-memory copies go too. Without a URL it starts a private
// redis-server (Debian's package) for the run.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createRequire } from 'node:module'

import { AudioFeatureCache, extractFeatures, type ExtractOptions, type ExtractedFeatures } from '../index.js'

const require = createRequire(__filename)
const OPTIONS: ExtractOptions = { sampleRate: 16000, nFft: 512, hopLength: 160, nMels: 64, nMfcc: 13, features: ['logMel', 'mfcc'] }
/** The options as keyFor's parameters. */
const PARAMS: Record<string, unknown> = { ...OPTIONS }
const CLIPS = 120
const SPEAKERS = 4

/** Clip `i` of the set: two seconds of a speaker's harmonic voice, the same in every process. */
function clip(i: number): Float32Array {
  const f0 = 110 + 40 * (i % SPEAKERS) + i
  const y = new Float32Array(32000)
  for (let n = 0; n < y.length; n++) {
    const t = n / 16000
    y[n] = 0.3 * (Math.sin(2 * Math.PI * f0 * t) + 0.5 * Math.sin(4 * Math.PI * f0 * t)) * (0.6 + 0.4 * Math.sin(2 * Math.PI * 3 * t))
  }
  return y
}

/** Features of every clip through `cache`; how many were computed here and how long it took. */
async function extractAll(cache: AudioFeatureCache): Promise<{ computed: number; ms: number }> {
  let computed = 0
  const started = performance.now()
  await Promise.all(
    Array.from({ length: CLIPS }, (_, i) => {
      const audio = clip(i)
      return cache.getOrCompute<ExtractedFeatures>(
        AudioFeatureCache.keyFor(audio, PARAMS),
        () => {
          computed++
          return extractFeatures(audio, OPTIONS)
        },
        { tags: [`speaker:${i % SPEAKERS}`] },
      )
    }),
  )
  await cache.flush()
  return { computed, ms: performance.now() - started }
}

function cacheFor(url: string, keyPrefix: string): AudioFeatureCache {
  return new AudioFeatureCache({
    redis: { url, keyPrefix, onError: (e) => console.error(`  redis: ${e.code}: ${e.message}`) },
  })
}

/** The second process: the same clips, then an invalidation by tag. */
export async function sharedWorker(url: string, keyPrefix: string): Promise<void> {
  const cache = cacheFor(url, keyPrefix)
  const { computed, ms } = await extractAll(cache)
  const l2 = cache.getStats().l2!
  console.log(`  second process: ${CLIPS} clips in ${ms.toFixed(0)} ms, computed ${computed}, from Redis ${l2.hits} (${l2.roundTrips} round trips, p50 ${l2.latencyP50Ms.toFixed(2)} ms)`)
  const removed = cache.invalidate({ tag: 'speaker:0' })
  await cache.flush()
  console.log(`  second process: invalidated tag speaker:0 (${removed} entries here, and in Redis and every other process)`)
}

/** Runs the two-process demo against `url`, or a private server when it is undefined. */
export async function sharedDemo(url: string | undefined): Promise<void> {
  let server: { url: string; close(): Promise<void> } | null = null
  if (!url) {
    const { redisAvailable, startRedis } = require('../scripts/redis-server.js')
    if (!redisAvailable()) {
      console.error('demo: --redis needs a URL (redis://host:port) or a local redis-server (apt-get install redis-server)')
      process.exit(1)
    }
    server = await startRedis()
    url = server!.url
  }
  try {
    const keyPrefix = `gama-demo-${process.pid}-${Date.now()}`
    console.log(`gama-native shared-features demo: ${CLIPS} clips, two processes, Redis at ${url} (prefix ${keyPrefix})\n`)
    const cache = cacheFor(url, keyPrefix)
    const first = await extractAll(cache)
    console.log(`  first process:  ${CLIPS} clips in ${first.ms.toFixed(0)} ms, computed ${first.computed}, written to Redis ${cache.getStats().l2!.writes}`)

    const child = spawn(process.execPath, ['--import', 'tsx', __filename, '--worker', url, keyPrefix], { stdio: 'inherit' })
    const [code] = await once(child, 'exit')
    if (code !== 0) throw new Error(`the second process exited with ${code}`)

    // The second process's invalidation reaches this one over pub/sub.
    const speaker0 = Array.from({ length: CLIPS }, (_, i) => i).filter((i) => i % SPEAKERS === 0)
    const keys = speaker0.map((i) => AudioFeatureCache.keyFor(clip(i), PARAMS))
    const deadline = Date.now() + 5000
    while (keys.some((k) => cache.has(k)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5))
    const left = keys.filter((k) => cache.has(k)).length
    console.log(`  first process:  ${keys.length - left} of ${keys.length} speaker:0 entries gone from memory here after the other process's invalidation`)
    const s = cache.getStats()
    console.log(`\n  cache here: ${s.entries} entries, redis ${s.redis}, ${s.l2!.invalidationsReceived} invalidations received, compression ${s.l2!.compressionRatio.toFixed(2)}x, ${(s.l2!.bytesSent / 2 ** 20).toFixed(1)} MiB sent`)
  } finally {
    await server?.close()
  }
}

if (process.argv[2] === '--worker') {
  sharedWorker(process.argv[3], process.argv[4]).catch((err) => {
    console.error(err)
    process.exit(1)
  })
}
