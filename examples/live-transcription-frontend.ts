// The front end of a live transcription backend (seeds/stt-backend-
// performance.md, "Optimized Streaming State"): 50 utterances arrive at
// once as 20 ms chunks in real time; each gets a feature stream whose
// log-mel and MFCC frames come back as the audio arrives, computed on the
// Rust pool, and equal to offline extraction of the whole utterance.
//
//   npx tsx examples/live-transcription-frontend.ts [--input DIR] [--utterances N]
//
// Without --input it writes 50 short WAV files (speech-like tones) to a
// temporary folder first. Prints each utterance's push-to-frames latency.
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { extname, join } from 'node:path'

import { FeatureStreams, loadAudio, type FrameBlock } from '../index.js'
import { wav } from './wav.js'

const SR = 16000
const CHUNK = SR / 50 // 20 ms
const HOP = 160

function arg(name: string): string | undefined {
  const at = process.argv.indexOf(name)
  return at >= 0 ? process.argv[at + 1] : undefined
}

/** `count` utterances of 1 to 3 s: syllable-like bursts of a gliding tone. */
function writeUtterances(count: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'gama-live-'))
  for (let u = 0; u < count; u++) {
    const y = new Float32Array(Math.round(SR * (1 + (u % 5) * 0.5)))
    const pitch = 110 + (u * 37) % 150
    for (let i = 0; i < y.length; i++) {
      const t = i / SR
      const syllable = Math.max(0, Math.sin(Math.PI * 4 * t)) ** 2
      y[i] = 0.3 * syllable * (Math.sin(2 * Math.PI * pitch * t) + 0.5 * Math.sin(2 * Math.PI * pitch * 2.1 * t))
    }
    writeFileSync(join(dir, `utterance-${String(u).padStart(2, '0')}.wav`), wav(y, SR, 1))
  }
  return dir
}

const pct = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0

async function main() {
  const count = Number(arg('--utterances') ?? 50)
  const input = arg('--input')
  const dir = input ?? writeUtterances(count)
  try {
    const files = readdirSync(dir).filter((f) => extname(f).toLowerCase() === '.wav').sort().slice(0, count)
    if (files.length === 0) throw new Error(`no .wav files in ${dir}`)
    const clips = await Promise.all(files.map((f) => loadAudio(join(dir, f), { sampleRate: SR })))

    const streams = new FeatureStreams({
      options: { sampleRate: SR, nFft: 512, hopLength: HOP, nMels: 80, nMfcc: 13, features: ['logMel', 'mfcc'] },
      maxConcurrent: files.length,
      idleTimeoutMs: 2000,
    })
    const started = performance.now()
    const results = await Promise.all(
      clips.map(async ({ samples }, u) => {
        const latencies: number[] = []
        // A chunk is due at start + 20 ms x its index (as a microphone would send it).
        const due = (chunk: number) => started + (chunk + 1) * 20
        const stream = streams.start(files[u], {
          onFrames: (block: FrameBlock) => {
            // The chunk holding the last sample this block's last frame needs.
            const end = (block.firstFrame + block.frames - 1) * HOP + 256
            const chunk = Math.min(Math.ceil(end / CHUNK) - 1, Math.ceil(samples.length / CHUNK) - 1)
            latencies.push(performance.now() - due(chunk))
          },
        })
        for (let k = 0; k * CHUNK < samples.length; k++) {
          const wait = due(k) - performance.now()
          if (wait > 0) await new Promise((r) => setTimeout(r, wait))
          stream.push(samples.subarray(k * CHUNK, (k + 1) * CHUNK))
        }
        const summary = await stream.finalize()
        latencies.sort((a, b) => a - b)
        return { file: files[u], summary, p50: pct(latencies, 0.5), p95: pct(latencies, 0.95), max: latencies.at(-1) ?? 0 }
      }),
    )
    console.log(`${results.length} utterances streamed at once in 20 ms chunks, in real time\n`)
    console.log('utterance            audio   frames   latency p50 / p95 / max (ms)')
    for (const r of results) {
      console.log(
        `${r.file.padEnd(20)} ${r.summary.durationSec.toFixed(2).padStart(5)} s ${String(r.summary.frames).padStart(7)}   ${r.p50.toFixed(1).padStart(5)} / ${r.p95.toFixed(1).padStart(5)} / ${r.max.toFixed(1).padStart(5)}`,
      )
    }
    const stats = streams.getStats()
    console.log(
      `\nall streams: ${stats.frames} frames, push-to-frames p50 ${stats.latency.p50.toFixed(2)} ms, p99 ${stats.latency.p99.toFixed(2)} ms; ${stats.finalized} finalized, ${stats.idleClosed} idle-closed`,
    )
    await streams.close()
  } finally {
    if (!input) rmSync(dir, { recursive: true })
  }
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
