// A 16-bit PCM WAV writer for the examples' generated audio.

/** A 16-bit PCM WAV file of `channels` copies of `y`. */
export function wav(y: Float32Array, rate: number, channels: number): Buffer {
  const data = Buffer.alloc(y.length * 2 * channels)
  for (let i = 0; i < y.length; i++) {
    const v = Math.max(-32768, Math.min(32767, Math.round(y[i] * 32767)))
    for (let c = 0; c < channels; c++) data.writeInt16LE(v, (i * channels + c) * 2)
  }
  const header = Buffer.alloc(44)
  header.write('RIFF', 0)
  header.writeUInt32LE(36 + data.length, 4)
  header.write('WAVEfmt ', 8)
  header.writeUInt32LE(16, 16)
  header.writeUInt16LE(1, 20)
  header.writeUInt16LE(channels, 22)
  header.writeUInt32LE(rate, 24)
  header.writeUInt32LE(rate * channels * 2, 28)
  header.writeUInt16LE(channels * 2, 32)
  header.writeUInt16LE(16, 34)
  header.write('data', 36)
  header.writeUInt32LE(data.length, 40)
  return Buffer.concat([header, data])
}
