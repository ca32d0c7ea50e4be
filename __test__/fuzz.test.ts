// The property/fuzz suite (scripts/fuzz.js) at the size `npm test` affords:
// generated calls to every export, each batch in a child process; any crash,
// hang, promise the addon never settles, or error without a code fails it.
// `npm run fuzz -- --cases N` runs a longer one before a release.
import { test } from 'node:test'
import assert from 'node:assert/strict'

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { fuzz } = require('../scripts/fuzz.js') as {
  fuzz: (o: { cases: number; seed: number }) => { ran: number; threw: number; failures: string[] }
}

test('fuzz: generated calls to every export never crash, hang, strand a promise or throw an unclear error', { timeout: 600_000 }, () => {
  const seed = Number(process.env.FUZZ_SEED ?? 20261128)
  const { ran, threw, failures } = fuzz({ cases: Number(process.env.FUZZ_CASES ?? 30000), seed })
  console.log(`fuzz: ${ran} cases (seed ${seed}), ${threw} refused with a clear error`)
  assert.deepEqual(failures, [])
  assert.ok(ran >= 1000)
})
