// Child of leaks.test.mjs (run with --expose-gc): repeats a job many times and prints resident
// memory (VmRSS, after a garbage collection) and the caching allocator's counters as it goes.
// Usage: node --expose-gc leaks.mjs predict   10,000 predict calls on one model
//        node --expose-gc leaks.mjs cycles    30 x (create, train 1 epoch, predict, save, load, dispose)
import { join } from 'node:path'
import { createModel, loadModel } from 'siamese-torch'
import { binding } from '../../../dist/binding.js'
import { expectArguments, statusMiB, tinyDigits } from '../common.mjs'
import { image } from '../../helpers/small-data.mjs'

expectArguments(2, 'node --expose-gc leaks.mjs <predict|cycles> <scratch folder>')

const [mode, scratch] = process.argv.slice(2)
const print = (o) => process.stdout.write(`${JSON.stringify(o)}\n`)
const sample = (step) => {
  globalThis.gc()
  const { liveBytes, idleBytes } = binding().cpuMemory()
  print({ step, rss: statusMiB('VmRSS'), liveMiB: liveBytes / 2 ** 20, idleMiB: idleBytes / 2 ** 20 })
}
const data = await tinyDigits()
const a = image(data.test, 0)
const b = image(data.test, 1)

if (mode === 'predict') {
  const model = await createModel({ seed: 1 })
  const first = await model.predict(a, b)
  const many = [image(data.test, 2), image(data.test, 3), image(data.test, 4)]
  sample(0)
  for (let call = 0; call < 10_000;) {
    // Ten calls at a time, most single pairs, some small batches.
    const round = []
    for (let k = 0; k < 10; k++, call++) round.push(call % 10 === 9 ? model.predict(many, many.slice().reverse()) : model.predict(a, b))
    const results = await Promise.all(round)
    if (results[0] !== first) throw new Error(`predict changed its answer: ${results[0]} != ${first}`)
    if (call % 500 === 0) sample(call)
  }
  model.dispose()
  sample('disposed')
} else {
  const baseline = binding().cpuMemory().liveBytes
  print({ baselineLiveMiB: baseline / 2 ** 20 })
  sample(0)
  const file = join(scratch, 'cycle.safetensors')
  for (let cycle = 1; cycle <= 30; cycle++) {
    const model = await createModel({ seed: cycle })
    const liveCreated = binding().cpuMemory().liveBytes
    await model.train({ data, epochs: 1 })
    // Training leaves nothing behind in the model: no gradients, no optimiser state.
    print({ cycle, liveCreatedMiB: liveCreated / 2 ** 20, liveTrainedMiB: binding().cpuMemory().liveBytes / 2 ** 20 })
    await model.predict(a, b)
    await model.embed([a, b])
    await model.save(file)
    const loaded = await loadModel(file)
    await loaded.predict(a, b)
    loaded.dispose()
    model.dispose()
    const { liveBytes } = binding().cpuMemory()
    print({ cycle, liveAfterDisposeMiB: liveBytes / 2 ** 20 })
    sample(cycle)
  }
}
print({ done: true })
