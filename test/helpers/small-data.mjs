// Small, class-mixed subsets of the embedded digits, so that training tests take seconds.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
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

/** Writes `data`'s splits as the four gzipped IDX files of a folder, as a user passes with --data. */
export function writeIdxFolder (dir, data) {
  const writeSplit = (set, images, labels) => {
    const head = Buffer.alloc(16)
    head.writeUInt32BE(2051, 0); head.writeUInt32BE(set.count, 4); head.writeUInt32BE(28, 8); head.writeUInt32BE(28, 12)
    writeFileSync(join(dir, images), gzipSync(Buffer.concat([head, Buffer.from(set.images)])))
    const lab = Buffer.alloc(8)
    lab.writeUInt32BE(2049, 0); lab.writeUInt32BE(set.count, 4)
    writeFileSync(join(dir, labels), gzipSync(Buffer.concat([lab, Buffer.from(Uint8Array.from(set.labels))])))
  }
  writeSplit(data.train, 'train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz')
  writeSplit(data.test, 't10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz')
}
