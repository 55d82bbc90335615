// Concurrent predicts share forward passes (native/addon/batcher.h): each call gets the answers it
// would get alone, in its order and length; calls beyond a batch's size go into the next; a bad
// call is refused alone; a model with calls pending is busy.
import t from 'tap'
import { createModel } from 'siamese-torch'
import { binding } from '../dist/binding.js'
import { image, smallDigits } from './helpers/small-data.mjs'

const data = await smallDigits()
const pairs = Array.from({ length: 64 }, (_, i) => [image(data.test, i), image(data.test, (i * 7 + 3) % data.test.count)])
const close = (a, b) => Math.abs(a - b) < 1e-5

t.test('64 concurrent predicts get the answers of one by one, each its own', async (t) => {
  const model = await createModel({ seed: 1, threads: 1 })
  const alone = []
  for (const [a, b] of pairs) alone.push(await model.predict(a, b))
  const together = await Promise.all(pairs.map(([a, b]) => model.predict(a, b)))
  t.ok(together.every((p, i) => close(p, alone[i])), 'the same P(same), pair by pair')
  // Calls of several pairs each keep their length and order inside a shared pass.
  const sizes = [1, 5, 2, 9, 3]
  let start = 0
  const calls = sizes.map((n) => {
    const slice = pairs.slice(start, start + n)
    start += n
    return model.predict(slice.map((p) => p[0]), slice.map((p) => p[1]))
  })
  start = 0
  for (const [k, result] of (await Promise.all(calls)).entries()) {
    t.equal(result.length, sizes[k])
    t.ok(result.every((p, j) => close(p, alone[start + j])), `call ${k}: its own pairs, in order`)
    start += sizes[k]
  }
  // Calls still pending keep the model busy.
  const pending = Promise.all(pairs.map(([a, b]) => model.predict(a, b)))
  t.throws(() => model.dispose(), { code: 'ERR_BUSY' })
  await pending
  model.dispose()
})

t.test('a batch takes at most its size in pairs; the rest go into the next batches; 0 turns batching off', async (t) => {
  const config = { tower: 'reference', width: 28, height: 28, channels: 1, embeddingSize: 16, mean: [0.1307], std: [0.3081], loss: 'pair-ce', margin: 1, threshold: 0.5 }
  const native = await binding().createModel(config, 'cpu', 3, 1)
  const left = (i) => Uint8Array.from(pairs[i][0])
  const right = (i) => Uint8Array.from(pairs[i][1])
  const alone = []
  for (let i = 0; i < 20; i++) alone.push((await native.predictPairs(left(i), right(i), 1))[0])
  for (const maxPairs of [3, 1, 0]) {
    native.setPredictBatch(maxPairs)
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => native.predictPairs(left(i), right(i), 1)))
    t.ok(results.every((r, i) => r.length === 1 && close(r[0], alone[i])), `batches of at most ${maxPairs} pair(s): every call settles with its own`)
  }
  // A call larger than the batch size still runs, alone.
  native.setPredictBatch(2)
  const big = new Uint8Array(784 * 6)
  for (let i = 0; i < 6; i++) big.set(pairs[i][0], i * 784)
  t.equal((await native.predictPairs(big, big, 6)).length, 6)
  native.dispose()
})

t.test('the default batch: 32 pairs on a CPU, so that 64 calls in flight fill two passes', async (t) => {
  const config = { tower: 'reference', width: 28, height: 28, channels: 1, embeddingSize: 16, mean: [0.1307], std: [0.3081], loss: 'pair-ce', margin: 1, threshold: 0.5 }
  const native = await binding().createModel(config, 'cpu', 3, 1)
  t.equal(native.info().predictBatch, 32)
  const left = Uint8Array.from(pairs[0][0])
  const right = Uint8Array.from(pairs[0][1])
  await native.predictPairs(left, right, 1)
  const before = native.batchStats()
  await Promise.all(Array.from({ length: 64 }, () => native.predictPairs(left, right, 1)))
  const after = native.batchStats()
  t.equal(after.pairs - before.pairs, 64)
  t.ok(after.passes - before.passes >= 2, `64 calls in ${after.passes - before.passes} passes, none over 32 pairs`)
  t.same(after.bySize.slice(6), before.bySize.slice(6), 'no pass of more than 32 pairs')
  native.setPredictBatch(256)
  t.equal(native.info().predictBatch, 256, 'and it can be set')
  native.dispose()
  const model = await createModel({ seed: 1, threads: 1 })
  t.equal(model.predictBatch, 32, 'the public model reads the same default')
  model.predictBatch = 7
  t.equal(model.predictBatch, 7)
  model.dispose()
  t.throws(() => model.predictBatch, { code: 'ERR_DISPOSED' })
})

t.test('a bad call among concurrent ones is refused alone: inputs are checked before batching', async (t) => {
  const model = await createModel({ seed: 1, threads: 1 })
  const results = await Promise.allSettled([
    model.predict(pairs[0][0], pairs[0][1]),
    model.predict(new Uint8Array(5), pairs[1][1]),
    model.predict(pairs[2][0], pairs[2][1])
  ])
  t.same(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled'])
  t.equal(results[1].reason.code, 'ERR_INVALID_ARG')
  model.dispose()
})

t.test('compare: predict\'s P(same) bit for bit, the embeddings\' distance, the verdict; batched with predicts', async (t) => {
  const model = await createModel({ seed: 1, threads: 1 })
  const [a, b] = [pairs[0][0], pairs[0][1]]
  const [ea, eb] = await model.embed([a, b])
  const distance = Math.sqrt(ea.reduce((s, v, i) => s + (v - eb[i]) ** 2, 0))
  const one = await model.compare(a, b)
  t.equal(one.pSame, await model.predict(a, b))
  t.ok(Math.abs(one.distance - distance) < 1e-4, `distance ${one.distance} against ${distance}`)
  t.equal(one.same, one.pSame >= model.config.threshold)
  const mixed = await Promise.all(pairs.slice(0, 16).map(([x, y], i) => (i % 2 === 0 ? model.compare(x, y) : model.predict(x, y))))
  const alone = []
  for (const [x, y] of pairs.slice(0, 16)) alone.push(await model.predict(x, y))
  t.ok(mixed.every((r, i) => (i % 2 === 0 ? r.pSame : r) === alone[i]), 'compare and predict calls sharing passes: each its own answer, bit for bit')
  const many = await model.compare(pairs.slice(0, 3).map((p) => p[0]), pairs.slice(0, 3).map((p) => p[1]))
  t.equal(many.length, 3)
  t.throws(() => { model.predictBatch = -1 }, { code: 'ERR_INVALID_ARG' })
  model.predictBatch = 0
  t.equal(model.predictBatch, 0)
  t.equal((await model.compare(a, b)).pSame, one.pSame, 'unbatched: the same')
  model.dispose()
})
