import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { loadAudio, loadAudioSync } from '../index.js'

const dir = mkdtempSync(join(tmpdir(), 'gama-wav-'))

/**
 * A WAV file of interleaved `samples` in [-1, 1], or of `raw` data bytes in
 * another `format` (a non-PCM format gets the 18-byte fmt chunk the format
 * requires).
 */
function wav(samples: number[], { rate = 16000, channels = 1, bits = 16, float = false, format = undefined as number | undefined, raw = undefined as Buffer | undefined } = {}): Buffer {
  const bytes = bits / 8
  const data = raw ?? Buffer.alloc(samples.length * bytes)
  if (!raw) samples.forEach((s, i) => {
    const o = i * bytes
    if (float && bits === 64) data.writeDoubleLE(s, o)
    else if (float) data.writeFloatLE(s, o)
    else if (bits === 8) data.writeUInt8(Math.round(s * 127) + 128, o)
    else if (bits === 16) data.writeInt16LE(Math.round(s * 32767), o)
    else if (bits === 24) data.writeIntLE(Math.round(s * 8388607), o, 3)
    else data.writeInt32LE(Math.round(s * 2147483647), o)
  })
  const tag = format ?? (float ? 3 : 1)
  const fmt = Buffer.alloc(tag === 1 ? 16 : 18)
  fmt.writeUInt16LE(tag, 0)
  fmt.writeUInt16LE(channels, 2)
  fmt.writeUInt32LE(rate, 4)
  fmt.writeUInt32LE(rate * channels * bytes, 8)
  fmt.writeUInt16LE(channels * bytes, 12)
  fmt.writeUInt16LE(bits, 14)
  const chunk = (id: string, body: Buffer) => {
    const head = Buffer.alloc(8)
    head.write(id, 0)
    head.writeUInt32LE(body.length, 4)
    return Buffer.concat([head, body])
  }
  const body = Buffer.concat([Buffer.from('WAVE'), chunk('fmt ', fmt), chunk('data', data)])
  return chunk('RIFF', body)
}

function file(name: string, content: Buffer) {
  const path = join(dir, name)
  writeFileSync(path, content)
  return path
}

const ramp = [0, 0.25, -0.5, 0.75, -1, 0.5]

test('reads PCM 8/16/24/32-bit and float32 WAV files', () => {
  for (const [bits, float, tolerance] of [[8, false, 1 / 120], [16, false, 1e-4], [24, false, 1e-6], [32, false, 1e-8], [32, true, 0]] as const) {
    const path = file(`ramp-${bits}${float ? 'f' : ''}.wav`, wav(ramp, { bits, float }))
    const audio = loadAudioSync(path)
    assert.equal(audio.sampleRate, 16000)
    assert.equal(audio.channels, 1)
    assert.equal(audio.samples.length, ramp.length)
    audio.samples.forEach((s, i) => assert.ok(Math.abs(s - ramp[i]) <= tolerance + 1e-7, `${bits}-bit sample ${i}: ${s}`))
    assert.ok(Math.abs(audio.durationSec - ramp.length / 16000) < 1e-12)
  }
})

test('reads 64-bit float (as numpy and scipy write float64), A-law and µ-law WAV files', () => {
  const double = loadAudioSync(file('ramp-64f.wav', wav(ramp, { bits: 64, float: true })))
  assert.deepEqual(Array.from(double.samples), ramp)
  // G.711 codes and the 16-bit values they stand for (Python's audioop).
  for (const [name, format, codes, values] of [
    ['mulaw', 7, [0xff, 0x80, 0x00, 0xef, 0x7f], [0, 32124, -32124, 132, 0]],
    ['alaw', 6, [0xd5, 0xaa, 0x2a, 0x55], [8, 32256, -32256, -8]],
  ] as const) {
    const audio = loadAudioSync(file(`${name}.wav`, wav([], { bits: 8, format, raw: Buffer.from(codes), rate: 8000 })))
    assert.equal(audio.sampleRate, 8000)
    assert.deepEqual(Array.from(audio.samples), values.map((v) => v / 32768), name)
  }
})

test('stereo files are averaged to mono, or kept interleaved', async () => {
  const path = file('stereo.wav', wav([0.5, -0.5, 0.25, 0.75], { channels: 2 }))
  const mono = await loadAudio(path)
  assert.equal(mono.channels, 1)
  assert.deepEqual(Array.from(mono.samples, (v) => Math.round(v * 1000) / 1000), [0, 0.5])
  const both = loadAudioSync(path, { mono: false })
  assert.equal(both.channels, 2)
  assert.equal(both.samples.length, 4)
})

test('resamples to the requested rate, keeping the tone', () => {
  const rate = 48000
  const tone = Array.from({ length: rate }, (_, i) => 0.5 * Math.sin((2 * Math.PI * 1000 * i) / rate))
  const path = file('tone48k.wav', wav(tone, { rate, float: true, bits: 32 }))
  const audio = loadAudioSync(path, { sampleRate: 16000 })
  assert.equal(audio.sampleRate, 16000)
  assert.equal(audio.samples.length, 16000)
  // A 1 kHz tone crosses zero about 2000 times a second, at the same amplitude.
  let crossings = 0
  let peak = 0
  for (let i = 1000; i < 15000; i++) {
    if ((audio.samples[i] < 0) !== (audio.samples[i - 1] < 0)) crossings++
    peak = Math.max(peak, Math.abs(audio.samples[i]))
  }
  assert.ok(Math.abs(crossings - 1750) <= 4, `${crossings} crossings`)
  assert.ok(Math.abs(peak - 0.5) < 0.01, `peak ${peak}`)
})

test('a WAV file streamed to a pipe (placeholder sizes) is read to its end', async () => {
  // ffmpeg and sox writing to a pipe cannot go back to fill in the sizes:
  // they leave 0xFFFFFFFF, or a size just under 2 GiB.
  const whole = wav(ramp.concat(ramp), { bits: 16 })
  const expected = loadAudioSync(file('sized.wav', whole)).samples
  for (const [riff, size] of [[0xffffffff, 0xffffffff], [0x7ffff024, 0x7ffff000]]) {
    const streamed = Buffer.from(whole)
    streamed.writeUInt32LE(riff, 4)
    streamed.writeUInt32LE(size, 40) // data
    const path = file(`streamed-${size}.wav`, streamed)
    assert.deepEqual(loadAudioSync(path).samples, expected, `data size ${size}`)
    assert.deepEqual((await loadAudio(path, { sampleRate: 8000 })).samples.length, 6)
  }
  // A real size that the file falls short of is still a truncated file.
  const cut = Buffer.from(whole)
  cut.writeUInt32LE((1 << 20) + 36, 4)
  cut.writeUInt32LE(1 << 20, 40)
  assert.throws(() => loadAudioSync(file('cut.wav', cut)), { code: 'E_BAD_WAV', message: /truncated/ })
})

test('bad files and paths get clear errors with codes', async () => {
  const cases: Array<[string, string, RegExp]> = [
    [join(dir, 'missing.wav'), 'ENOENT', /cannot read/],
    [dir, 'EISDIR', /is a directory/],
    [file('noise.wav', Buffer.from('this is not a wav file at all, just text')), 'E_BAD_WAV', /not a valid WAV/],
    [file('truncated.wav', wav(ramp.concat(ramp, ramp)).subarray(0, 44 + 10)), 'E_BAD_WAV', /truncated|not a valid/],
    [file('empty.wav', Buffer.alloc(0)), 'E_BAD_WAV', /not a valid WAV/],
  ]
  for (const [path, code, message] of cases) {
    assert.throws(() => loadAudioSync(path), (err: Error & { code?: string }) => {
      assert.equal(err.code, code, path)
      assert.match(err.message, message)
      return true
    })
    await assert.rejects(loadAudio(path), { code })
  }
  // A float file may hold NaN: it loads as it is, but cannot be resampled
  // (the resampler panicked on it and loadAudio aborted Node).
  const nan = file('nan.wav', wav([0.5, NaN, 0.25, -0.5], { bits: 32, float: true }))
  assert.ok(Number.isNaN(loadAudioSync(nan).samples[1]))
  assert.throws(() => loadAudioSync(nan, { sampleRate: 8000 }), { code: 'E_NOT_FINITE', message: /holds NaN at sample 1: .*cannot be resampled/ })
  await assert.rejects(loadAudio(nan, { sampleRate: 8000 }), { code: 'E_NOT_FINITE' })
  assert.throws(() => loadAudioSync(join(dir, 'ramp-16.wav'), { sampleRate: 0 }), RangeError)
  assert.throws(() => loadAudioSync(join(dir, 'ramp-16.wav'), { sampleRate: 44100.5 }), RangeError)
})
