// The README's quick start, run as it is written by test/examples.test.mjs.
import { train, datasets } from 'siamese-torch'

// The 10,000 real MNIST digits that ship with the package: 8,004 to train on, 1,996 to test.
const { test } = await datasets.embedded()
const digit = (i) => test.images.subarray(i * 784, (i + 1) * 784) // one 28x28 image's pixels

// The reference network, trained natively on its own thread: the event loop stays free.
const { model, history } = await train({
  epochs: 2,
  onProgress: (e) => {
    if (e.type === 'epoch') console.log(`epoch ${e.epoch}: ${(100 * e.testAccuracy).toFixed(1)}% of test pairs right`)
  }
})

// P(same) for two images of the first test digit's class, then for two of different classes.
const same = test.labels.findIndex((label, i) => i > 0 && label === test.labels[0])
const other = test.labels.findIndex((label) => label !== test.labels[0])
console.log(`P(same) for two ${test.classes[test.labels[0]]}s: ${(await model.predict(digit(0), digit(same))).toFixed(3)}`)
console.log(`P(same) for a ${test.classes[test.labels[0]]} and a ${test.classes[test.labels[other]]}: ` +
  `${(await model.predict(digit(0), digit(other))).toFixed(3)}`)

await model.save('digits.safetensors') // safetensors: PyTorch loads it too
console.log(`after ${history.length} epochs; saved to digits.safetensors`)
model.dispose()
