// Small, class-mixed subsets of the embedded digits, so that training tests take seconds.
import { datasets } from 'siamese-torch'

/** Every `step`-th image of `set` (the embedded sets are class by class, so this keeps all classes). */
export function strided (set, step) {
  const picked = []
  for (let i = 0; i < set.count; i += step) picked.push(i)
  const size = set.width * set.height
  const images = new Uint8Array(picked.length * size)
  picked.forEach((k, j) => images.set(set.images.subarray(k * size, (k + 1) * size), j * size))
  return datasets.fromArrays({ images, labels: picked.map((k) => set.labels[k]), width: set.width, height: set.height, classes: set.classes })
}

/** About 500 train and 250 test digits. */
export async function smallDigits () {
  const { train, test } = await datasets.embedded()
  return { name: 'small digits', train: strided(train, 16), test: strided(test, 8) }
}

/** One image of the embedded test set, as raw pixels. */
export function image (set, i) {
  return set.images.slice(i * 784, (i + 1) * 784)
}
