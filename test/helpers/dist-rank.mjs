// One rank of a distributed test run (test/distributed.test.mjs): trains on the small digits with
// the options in argv[2] (JSON), then writes what the test compares to argv[3]: the history,
// the embeddings of the first test digits, how the run went, or the error.
import { writeFileSync } from 'node:fs'
import { train } from 'siamese-torch'
import { smallDigits } from './small-data.mjs'

const [options, out] = [JSON.parse(process.argv[2]), process.argv[3]]
const data = await smallDigits()
const started = Date.now()
try {
  const { model, history, distributed } = await train({ data, ...options })
  const images = Array.from({ length: 32 }, (_, i) => data.test.images.subarray(i * 784, (i + 1) * 784))
  const embeddings = (await model.embed(images)).map((e) => Array.from(e))
  writeFileSync(out, JSON.stringify({ history, distributed, embeddings, ms: Date.now() - started }))
} catch (err) {
  writeFileSync(out, JSON.stringify({ error: { code: err.code, message: err.message }, ms: Date.now() - started }))
}
