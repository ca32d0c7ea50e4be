// `npm run demo [-- --input DIR]` (or `-- --redis [URL]`: see
// shared-features.ts): the seed's ModelOrchestrator over a folder
// of WAV files. Each file is decoded (and resampled to 16 kHz) off the JS
// thread, then analysed and feature-extracted in batches on the Rust pool
// through the memory manager and the feature cache, with a live progress
// bar. A second pass over the same clips shows the cache at work, and a
// summary table tells where the time went. Without --input it generates a
// set of speech-like, tonal, noisy and silent clips of mixed lengths, sample
// rates and channel counts, plus a corrupt file and a text file to show how
// bad input is reported. Ctrl-C stops cleanly and prints what was done.
import { setMaxListeners } from 'node:events'
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { extname, join } from 'node:path'

import { loadAudio, type ExtractOptions, type OperationSummary } from '../index.js'
import { ModelOrchestrator, type OrchestratorTask } from './model-orchestrator.js'
import { sharedDemo } from './shared-features.js'
import { wav } from './wav.js'

const SR = 16000
const FEATURES: ExtractOptions = { sampleRate: SR, nFft: 512, hopLength: 160, nMels: 64, nMfcc: 13, features: ['logMel', 'mfcc'] }
const KINDS = ['speech-like', 'tonal', 'noisy', 'silent'] as const
const DECODE_CONCURRENCY = 8

/** Deterministic pseudo-random numbers (mulberry32). */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** One clip of a kind, `seconds` long at `rate`. */
function synthesise(kind: (typeof KINDS)[number], seconds: number, rate: number, rand: () => number): Float32Array {
  const y = new Float32Array(Math.round(rate * seconds))
  const f0 = 100 + 200 * rand()
  let phase = 0
  for (let i = 0; i < y.length; i++) {
    const t = i / rate
    if (kind === 'speech-like') {
      phase += (2 * Math.PI * f0 * (1 + 0.1 * Math.sin(2 * Math.PI * 4 * t))) / rate
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

/** Writes the built-in set into a fresh temporary folder. */
function generateSet(count: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'gama-demo-'))
  const rand = random(2026)
  const rates = [16000, 16000, 22050, 44100]
  for (let i = 0; i < count; i++) {
    const kind = KINDS[i % KINDS.length]
    const rate = rates[i % rates.length]
    const seconds = 0.5 + 5.5 * rand() ** 2
    writeFileSync(join(dir, `${String(i).padStart(3, '0')}-${kind}.wav`), wav(synthesise(kind, seconds, rate, rand), rate, rate === 44100 ? 2 : 1))
  }
  writeFileSync(join(dir, 'zz-corrupt.wav'), wav(synthesise('tonal', 1, SR, rand), SR, 1).subarray(0, 30))
  writeFileSync(join(dir, 'notes.txt'), 'not audio\n')
  return dir
}

function bar(done: number, total: number, width = 32): string {
  const fraction = total === 0 ? 1 : done / total
  const filled = Math.round(fraction * width)
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}%`
}

function fail(message: string): never {
  console.error(`demo: ${message}`)
  process.exit(1)
}

interface Clip {
  name: string
  samples: Float32Array
  seconds: number
}

async function main() {
  const controller = new AbortController()
  setMaxListeners(0, controller.signal) // one signal stops every pending item
  let interrupted = false
  process.on('SIGINT', () => {
    if (interrupted) process.exit(130)
    interrupted = true
    controller.abort()
    process.stdout.write('\ninterrupted: stopping (Ctrl-C again to quit at once)\n')
  })
  const args = process.argv.slice(2)
  const redisAt = args.indexOf('--redis')
  if (redisAt >= 0) return sharedDemo(args[redisAt + 1])
  const inputAt = args.indexOf('--input')
  if (inputAt >= 0 && !args[inputAt + 1]) fail('--input needs a folder: npm run demo -- --input DIR')
  const generated = inputAt < 0
  const dir = generated ? generateSet(240) : args[inputAt + 1]
  let entries: string[]
  try {
    if (!statSync(dir).isDirectory()) fail(`${dir} is not a folder`)
    entries = readdirSync(dir).sort()
  } catch (err) {
    fail(`cannot read folder ${dir}: ${(err as Error).message}`)
  }
  const wavs = entries.filter((f) => extname(f).toLowerCase() === '.wav')
  const skipped: Array<[string, string]> = entries.filter((f) => !wavs.includes(f)).map((f) => [f, 'not a .wav file'])
  if (wavs.length === 0) fail(`no .wav files in ${dir}${entries.length ? ` (${entries.length} other files)` : ' (the folder is empty)'}`)
  console.log(`gama-native demo: ${wavs.length} WAV files from ${generated ? 'a generated set' : dir}\n`)

  const orchestrator = new ModelOrchestrator({ featureOptions: FEATURES, maxBatchSize: 8 })
  const { batchProcessor, memoryManager, featureCache, profiler } = orchestrator
  profiler.reset()

  // Live progress: files decoded and items settled.
  let decoded = 0
  let settled = 0
  const total = wavs.length * 2
  const draw = () => {
    const line = `decode ${bar(decoded, wavs.length, 16)}  analyse+extract ${bar(settled, total)}`
    if (process.stdout.isTTY) process.stdout.write(`\r${line}`)
  }
  const ticker = setInterval(draw, 100)
  const started = performance.now()

  // Decode on the libuv pool with bounded concurrency, queueing each clip's
  // tasks as soon as it is decoded.
  const clips: Clip[] = []
  // Each clip's outcome: null when done, else the error (handled at once, so
  // an interrupted run never leaves a rejection unhandled).
  const work: Promise<Error | null>[] = []
  let next = 0
  const decodeOne = async (): Promise<void> => {
    while (next < wavs.length && !controller.signal.aborted) {
      const name = wavs[next++]
      try {
        const audio = await loadAudio(join(dir, name), { sampleRate: SR })
        const clip = { name, samples: audio.samples, seconds: audio.samples.length / SR }
        clips.push(clip)
        const tasks: OrchestratorTask[] = [
          { type: 'analyze', data: clip.samples, signal: controller.signal },
          { type: 'features', data: clip.samples, signal: controller.signal },
        ]
        work.push(
          orchestrator.executeParallelTasks(tasks).then(
            () => null,
            (err: Error) => err,
          ).finally(() => (settled += 2)),
        )
      } catch (err) {
        skipped.push([name, `${(err as { code?: string }).code ?? 'ERROR'}: ${(err as Error).message}`])
        settled += 2
      } finally {
        decoded++
      }
    }
  }
  await Promise.all(Array.from({ length: DECODE_CONCURRENCY }, decodeOne))
  const outcomes = await Promise.all(work)
  const firstPassMs = performance.now() - started
  clearInterval(ticker)
  draw()
  if (process.stdout.isTTY) process.stdout.write('\n')
  for (const err of outcomes) if (err && err.name !== 'AbortError') skipped.push(['(task)', String(err)])

  // Second pass: the same clips again; features now come from the cache.
  let secondPassMs = 0
  let hitRate = 0
  if (!controller.signal.aborted) {
    const before = featureCache.getStats()
    const t = performance.now()
    await Promise.allSettled(clips.map((c) => batchProcessor.addItem('EXTRACT_FEATURES', c.samples, { signal: controller.signal })))
    secondPassMs = performance.now() - t
    const after = featureCache.getStats()
    const lookups = after.hits + after.misses - before.hits - before.misses
    hitRate = lookups ? (after.hits - before.hits) / lookups : 0
  }

  const done = outcomes.filter((err) => err === null).length
  const audioSeconds = clips.reduce((s, c, i) => s + (outcomes[i] === null ? c.seconds : 0), 0)
  const stats = batchProcessor.getStats()
  const usage = memoryManager.getMemoryUsage()
  const runs = profiler.getPerformanceSummary({ component: 'batch' })
  const p95 = (op: string) => runs.find((s: OperationSummary) => s.operation === op)?.p95Ms ?? 0
  const rows: Array<[string, string]> = [
    ['clips processed', `${done} of ${wavs.length} WAV files${interrupted ? ' (interrupted)' : ''}, ${audioSeconds.toFixed(0)} s of audio`],
    ['throughput (first pass)', `${(done / (firstPassMs / 1000)).toFixed(0)} clips/s, ${(audioSeconds / (firstPassMs / 1000)).toFixed(0)} audio-s/s (decode + analyse + extract)`],
    ['second pass (cached features)', interrupted ? 'skipped' : `${clips.length} clips in ${secondPassMs.toFixed(0)} ms, cache hit rate ${(hitRate * 100).toFixed(1)}%`],
    ['memory manager peak', `${(usage.peak / 2 ** 20).toFixed(1)} MiB of ${(usage.total / 2 ** 30).toFixed(1)} GiB (batch reservations), process RSS ${(usage.system.processRss / 2 ** 20).toFixed(0)} MiB`],
    ['batches', `${stats.batches}, mean size ${stats.averageBatchSize.toFixed(1)}`],
    ['p95 latency', `wait ${stats.waitLatency.p95.toFixed(1)} ms | run: ANALYZE ${p95('ANALYZE.run').toFixed(1)} ms, EXTRACT_FEATURES ${p95('EXTRACT_FEATURES.run').toFixed(1)} ms`],
    ['skipped', skipped.length ? `${skipped.length}` : 'none'],
  ]
  const width = Math.max(...rows.map(([k]) => k.length))
  console.log('\nsummary')
  for (const [k, v] of rows) console.log(`  ${k.padEnd(width)}  ${v}`)
  for (const [name, why] of skipped) console.log(`    - ${name}: ${why}`)
  console.log('\nwhere the time went (profiler, share of measured native time)')
  for (const s of profiler.getPerformanceSummary().slice(0, 6)) {
    const flag = s.share > 0.2 ? '  <- bottleneck' : ''
    console.log(`  ${`${s.component}/${s.operation}`.padEnd(28)} ${(s.share * 100).toFixed(1).padStart(5)}%  n=${String(s.count).padStart(5)}  p50 ${s.p50Ms.toFixed(2)} ms  p95 ${s.p95Ms.toFixed(2)} ms${flag}`)
  }
  await orchestrator.close()
  if (generated) rmSync(dir, { recursive: true, force: true })
  if (interrupted) process.exitCode = 130
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
