// Child of exhaustion.test.mjs: runs out of memory on purpose and checks that it only costs
// the job. After setting up, it caps its own address space (RLIMIT_AS, with prlimit) at what it
// uses plus 1.25 GiB, then asks for more: a training step of 192 images of 256x256 (a 3 GB
// activation), a predict over 400 such pairs, a conv4 model whose embedding layer holds 4.3 billion weights (17 GB).
// Prints one JSON line per case, and the model's answers before and after; then a small model
// trains, to show the process carries on.
import { execFileSync } from 'node:child_process'
import { createModel, datasets } from 'siamese-torch'
import { binding } from '../../../dist/binding.js'
import { expectArguments, statusMiB } from '../common.mjs'

expectArguments(1, 'node oom.mjs run')

const print = (o) => process.stdout.write(`${JSON.stringify(o)}\n`)
const side = 256
const size = side * side
const count = 80
const images = new Uint8Array(count * size)
for (let i = 0; i < images.length; i++) images[i] = (i * 7 + (i >> 11)) & 255
const set = datasets.fromArrays({ images, labels: Array.from({ length: count }, (_, i) => i % 4), width: side, height: side })
const a = images.subarray(0, size)
const b = images.subarray(size, 2 * size)
const model = await createModel({ width: side, height: side, embeddingSize: 8, seed: 1 })
const before = await model.predict(a, b)
const liveBefore = binding().cpuMemory().liveBytes

const vmSize = statusMiB('VmSize')
const limit = Math.round((vmSize + 1280) * 2 ** 20)
execFileSync('prlimit', ['--pid', String(process.pid), `--as=${limit}`])
print({ allocator: binding().cpuMemory().cachingAllocator ? 'caching' : 'system', vmSizeMiB: vmSize, limitMiB: limit / 2 ** 20 })

async function attempt (name, job) {
  const started = performance.now()
  const outcome = await job().then(() => ({ outcome: 'succeeded' }), (err) => ({ outcome: err?.code ?? `no code (${err})`, message: String(err?.message).slice(0, 300) }))
  const ms = performance.now() - started
  const after = await model.predict(a, b).then((p) => p, (err) => `${err.code}: ${err.message}`)
  print({ name, ...outcome, ms, predictAfter: after, same: after === before })
}

await attempt('training step of 192 images of 256x256', () => model.train({ data: { train: set, test: set }, epochs: 1, batchSize: 64 }))
const many = Array.from({ length: 400 }, (_, i) => images.subarray((i % count) * size, (i % count + 1) * size))
await attempt('predict over 400 pairs of 256x256', () => model.predict(many, many.slice().reverse()))
await attempt('createModel with a 17 GB embedding layer', () => createModel({ tower: 'conv4', width: 512, height: 512, embeddingSize: 65536 }))
// The model keeps its memory as it was, and the process carries on: a small model trains.
const liveAfter = binding().cpuMemory().liveBytes
const embedding = (await model.embed(a))[0].length
const small = datasets.fromArrays({ images: images.subarray(0, 40 * 784), labels: Array.from({ length: 40 }, (_, i) => i % 4), width: 28, height: 28 })
const other = await createModel({ seed: 2 })
const { history } = await other.train({ data: { train: small, test: small }, epochs: 1 })
print({ smallTraining: history.length, embedding, liveBeforeMiB: liveBefore / 2 ** 20, liveAfterMiB: liveAfter / 2 ** 20 })
other.dispose()
model.dispose()
print({ done: true })
