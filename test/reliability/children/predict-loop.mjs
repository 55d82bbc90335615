// Child of exit-teardown.test.mjs: keeps predict, embed and evaluate jobs in flight on one model
// and calls process.exit(7) `delay` ms after the first ones start.
// Usage: node predict-loop.mjs <delayMs>
import { createModel, datasets } from 'siamese-torch'
import { expectArguments, tinyDigits } from '../common.mjs'

expectArguments(1, 'node predict-loop.mjs <delayMs>')

const delay = Number(process.argv[2])
const { test } = await tinyDigits()
const model = await createModel({ seed: 1 })
const images = Array.from({ length: test.count }, (_, i) => test.images.subarray(i * 784, (i + 1) * 784))
const set = datasets.fromArrays({ images: test.images, labels: test.labels, width: 28, height: 28, classes: test.classes })
setTimeout(() => process.exit(7), delay)
process.stdout.write('{"event":"started"}\n')
for (;;) {
  await Promise.all([
    model.predict(images, images.slice().reverse()),
    model.predict(images[0], images[1]),
    model.embed(images),
    model.evaluate(set, { ways: 0 })
  ])
}
