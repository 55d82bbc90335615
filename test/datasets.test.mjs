// The data sources: embedded digits, Fashion-MNIST from Debian, arrays, image folders.
import t from 'tap'
import { existsSync, mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRequire } from 'node:module'
import sharp from 'sharp'
import { datasets, SiameseTorchError } from 'siamese-torch'

const require = createRequire(import.meta.url)
const scratch = mkdtempSync(join(tmpdir(), 'siamese-data-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

t.test('embedded: the 10,000 digits of the mnist package, split deterministically', async (t) => {
  const { name, train, test } = await datasets.embedded()
  t.equal(name, 'mnist (embedded)')
  t.same([train.count, test.count], [8004, 1996])
  t.same([train.width, train.height], [28, 28])
  t.same(train.classes, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'])
  const trainCounts = datasets.classCounts(train)
  const testCounts = datasets.classCounts(test)
  t.same(trainCounts, [801, 902, 793, 826, 784, 691, 812, 856, 756, 783])
  t.same(testCounts, [200, 225, 198, 206, 196, 172, 202, 214, 188, 195])
  const totals = trainCounts.map((n, i) => n + testCounts[i])
  t.equal(Math.min(...totals), 863)
  t.equal(Math.max(...totals), 1127)
  t.ok(Math.min(...trainCounts) >= 601, 'at least 601 a class in train: the reference scheme works')

  // The pixels are the package's own, value * 255 recovered exactly: the 6th "5" (position 5,
  // train because position % 5 != 4) is train image 801 + 902 + 793 + 826 + 784 + 4 of class 5.
  const fives = JSON.parse(readFileSync(require.resolve('mnist/src/digits/5.json'), 'utf8')).data
  const offset = trainCounts.slice(0, 5).reduce((a, b) => a + b, 0)
  const inTrain = offset + 4 // positions 0, 1, 2, 3 then 5: the 5th train "5"
  const expected = fives.slice(5 * 784, 6 * 784).map((v) => Math.round(v * 255))
  t.same([...train.images.subarray(inTrain * 784, (inTrain + 1) * 784)], expected)
  t.equal(train.labels[inTrain], 5)

  const again = await datasets.embedded()
  t.ok(Buffer.from(again.train.images).equals(train.images), 'the same on every call')
})

const FASHION = '/usr/share/datasets/fashion-mnist'
t.test('Fashion-MNIST from Debian loads at full size through idx() and fashionMnist()', { skip: !existsSync(FASHION) && 'apt-get install dataset-fashion-mnist' }, async (t) => {
  const started = Date.now()
  const { train, test } = await datasets.idx(FASHION)
  t.comment(`60,000 + 10,000 images read in ${Date.now() - started} ms`)
  t.same([train.count, test.count, train.width, train.height], [60000, 10000, 28, 28])
  t.same(datasets.classCounts(train), new Array(10).fill(6000))
  t.same(datasets.classCounts(test), new Array(10).fill(1000))

  const named = await datasets.fashionMnist({ root: FASHION })
  t.equal(named.name, 'fashion-mnist')
  t.equal(named.train.classes[9], 'Ankle boot')
  t.ok(Buffer.from(named.train.labels.buffer).equals(Buffer.from(train.labels.buffer)), 'the same labels')
})

t.test('fromArrays: bytes, floats, one array per image; the data is copied', async (t) => {
  const bytes = new Uint8Array([0, 255, 10, 20, 30, 40])
  const set = datasets.fromArrays({ images: bytes, labels: [1, 0, 1], width: 2, height: 1 })
  t.same({ count: set.count, width: set.width, height: set.height, classes: set.classes }, { count: 3, width: 2, height: 1, classes: ['0', '1'] })
  t.same([...set.labels], [1, 0, 1])
  t.type(set.labels, Int32Array)
  bytes[0] = 99
  t.equal(set.images[0], 0, 'later changes to the input do not reach the set')

  const floats = datasets.fromArrays({ images: [new Float32Array([0, 1]), new Float32Array([0.5, 0.2])], labels: new Uint8Array([0, 1]), width: 2, height: 1, classes: ['cat', 'dog'] })
  t.same([...floats.images], [0, 255, 128, 51])
  t.same(floats.classes, ['cat', 'dog'])
})

t.test('fromArrays: bad input is refused with the argument named', async (t) => {
  const ok = { images: new Uint8Array(4), labels: [0, 1], width: 2, height: 1 }
  const cases = [
    [{ ...ok, images: new Uint8Array(3) }, 'Expected 4 pixels (2 images of 2x1) for images but received Uint8Array of length 3'],
    [{ ...ok, images: new Float32Array([0, NaN, 0, 0]) }, 'Expected a finite pixel value from 0 to 1 (floats are 0..1) for images[1] but received number NaN'],
    [{ ...ok, images: new Float32Array([0, 2, 0, 0]) }, 'Expected a finite pixel value from 0 to 1 (floats are 0..1) for images[1] but received number 2'],
    [{ ...ok, images: [new Uint8Array(2)] }, 'Expected 2 images, one per label for images but received an array of length 1'],
    // Too few labels for whole images: the labels are blamed, not the images.
    [{ ...ok, images: new Uint8Array(6) }, 'Expected 3 labels, one per image (images holds 3 images of 2x1) for labels but received an array of length 2'],
    [{ ...ok, images: [new Uint8Array(2), new Uint8Array(2), new Uint8Array(2)] }, 'Expected 3 labels, one per image for labels but received an array of length 2'],
    [{ ...ok, images: 'pixels' }, 'Expected a Uint8Array, Float32Array or an array of them for images but received string "pixels"'],
    [{ ...ok, labels: [0, -1] }, 'Expected a non-negative integer label for labels[1] but received number -1'],
    [{ ...ok, labels: [0, 1.5] }, 'Expected a non-negative integer label for labels[1] but received number 1.5'],
    [{ ...ok, labels: [], images: new Uint8Array(0) }, 'Expected at least one label for labels but received an array of length 0'],
    [{ ...ok, width: 0 }, 'Expected an integer from 1 to 4096 for width but received number 0'],
    [{ ...ok, classes: ['only-one'] }, 'Expected at least 2 class names (the largest label is 1) for classes but received an array of length 1'],
    [{ ...ok, extra: 1 }, 'Expected only the options images, labels, width, height, channels, classes for fromArrays(input) but received an unknown option "extra"']
  ]
  for (const [input, message] of cases) {
    t.throws(() => datasets.fromArrays(input), { code: 'ERR_INVALID_ARG', message }, message)
  }
  t.throws(() => datasets.fromArrays(null), { code: 'ERR_INVALID_ARG' })
})

t.test('the embedded digits are read from outside an Electron app\'s asar archive', async (t) => {
  const { outsideAsar } = await import('../dist/files.js')
  t.equal(outsideAsar('/opt/App/resources/app.asar/node_modules/siamese-torch/dist/data/mnist-embedded'),
    '/opt/App/resources/app.asar.unpacked/node_modules/siamese-torch/dist/data/mnist-embedded')
  t.equal(outsideAsar('C:\\App\\resources\\app.asar\\node_modules'), 'C:\\App\\resources\\app.asar.unpacked\\node_modules')
  t.equal(outsideAsar('/home/me/project/node_modules/siamese-torch'), '/home/me/project/node_modules/siamese-torch', 'elsewhere, unchanged')
})

t.test('embedded() takes no options, and says so like every other function', async (t) => {
  await t.rejects(datasets.embedded({ foo: 1 }), {
    code: 'ERR_INVALID_ARG', message: 'Expected no options for options but received an unknown option "foo"'
  })
  t.equal((await datasets.embedded()).source, 'embedded', 'it can be read again by name')
})

async function writeImage (file, pixels, side, format) {
  const image = sharp(Buffer.from(pixels), { raw: { width: side, height: side, channels: 1 } })
  await (format === 'png' ? image.png() : image.jpeg({ quality: 95 })).toFile(file)
}

t.test('imageFolder: one folder a class, decoded to grayscale, resized, split every fifth', async (t) => {
  const { train } = await datasets.embedded()
  const root = join(scratch, 'digits')
  const chosen = []
  for (const digit of [3, 7]) {
    mkdirSync(join(root, `digit-${digit}`), { recursive: true })
    let written = 0
    for (let i = 0; i < train.count && written < 10; i++) {
      if (train.labels[i] !== digit) continue
      const pixels = train.images.subarray(i * 784, (i + 1) * 784)
      await writeImage(join(root, `digit-${digit}`, `${String(written).padStart(2, '0')}.png`), pixels, 28, 'png')
      chosen.push({ digit, pixels })
      written++
    }
  }
  writeFileSync(join(root, 'digit-3', 'notes.txt'), 'not an image, ignored')

  const set = await datasets.imageFolder(root)
  t.same(set.train.classes, ['digit-3', 'digit-7'])
  t.same([set.train.count, set.test.count], [16, 4], 'positions 4 and 9 of each class are test')
  t.same([...set.test.labels], [0, 0, 1, 1])
  // PNG is lossless and the size is unchanged: the pixels come back exactly.
  t.same([...set.train.images.subarray(0, 784)], [...chosen[0].pixels])
  t.same([...set.test.images.subarray(0, 784)], [...chosen[4].pixels])

  const resized = await datasets.imageFolder(root, { width: 24, height: 30, testFraction: 0.5 })
  t.same([resized.train.width, resized.train.height, resized.train.count, resized.test.count], [24, 30, 10, 10])
  t.equal(resized.train.images.length, 10 * 24 * 30)
  t.equal(set.source, root, 'a folder read with the default split can be read again by its path')
  t.equal(resized.source, undefined, 'another split cannot')
  // Smaller than any tower takes: refused here, not later by train() naming an option never given.
  await t.rejects(datasets.imageFolder(root, { width: 10 }), {
    code: 'ERR_INVALID_ARG', message: 'Expected an integer from 16 to 4096 for width but received number 10'
  })
})

t.test('imageFolder: train/ and test/ folders, colour and JPEG input', async (t) => {
  const root = join(scratch, 'split')
  for (const [part, cls] of [['train', 'a'], ['train', 'b'], ['test', 'a'], ['test', 'b']]) {
    mkdirSync(join(root, part, cls), { recursive: true })
    await writeImage(join(root, part, cls, 'x.jpg'), new Uint8Array(32 * 32).fill(cls === 'a' ? 40 : 220), 32, 'jpeg')
  }
  // Grey JPEGs alone: read as grey (one channel).
  const grey = await datasets.imageFolder(root, { width: 24, height: 24 })
  t.equal(grey.train.channels, 1, 'a folder of grey images is read as grey')
  // An RGB image: the folder is read in colour by default, and in one grey channel when asked.
  await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 255, g: 0, b: 0 } } }).png().toFile(join(root, 'train', 'a', 'red.png'))
  const colour = await datasets.imageFolder(root, { width: 24, height: 24 })
  t.equal(colour.train.channels, 3, 'one colour image makes the folder colour')
  t.same([...colour.train.images.subarray(0, 3)], [255, 0, 0], 'red stays red')
  const set = await datasets.imageFolder(root, { width: 24, height: 24, channels: 1 })
  t.same([set.train.count, set.test.count], [3, 2])
  t.same(set.test.classes, ['a', 'b'])
  t.ok(Math.abs(set.test.images[0] - 40) <= 2 && Math.abs(set.test.images[576] - 220) <= 2, 'JPEG gray levels survive')
  t.ok(set.train.images[0] > 100 && set.train.images[0] < 160, `red becomes mid gray (${set.train.images[0]})`)
})

t.test('imageFolder: errors name the folder or file', async (t) => {
  const empty = join(scratch, 'empty-class')
  mkdirSync(join(empty, 'a'), { recursive: true })
  mkdirSync(join(empty, 'b'), { recursive: true })
  await writeImage(join(empty, 'a', '1.png'), new Uint8Array(4), 2, 'png')
  await t.rejects(datasets.imageFolder(empty), { code: 'ERR_BAD_FILE', message: `${join(empty, 'b')} holds no images (PNG, JPEG, WebP, GIF, TIFF, AVIF)` })

  const corrupt = join(scratch, 'corrupt')
  mkdirSync(join(corrupt, 'a'), { recursive: true })
  for (let i = 0; i < 5; i++) await writeImage(join(corrupt, 'a', `${i}.png`), new Uint8Array(4), 2, 'png')
  writeFileSync(join(corrupt, 'a', '9.png'), 'not a png')
  mkdirSync(join(corrupt, 'b'))
  for (let i = 0; i < 5; i++) await writeImage(join(corrupt, 'b', `${i}.png`), new Uint8Array(4), 2, 'png')
  const err = await datasets.imageFolder(corrupt).then(() => null, (e) => e)
  t.type(err, SiameseTorchError)
  t.equal(err.code, 'ERR_BAD_FILE')
  t.equal(err.path, join(corrupt, 'a', '9.png'))
  t.match(err.message, `${join(corrupt, 'a', '9.png')}: not a readable image`)

  await t.rejects(datasets.imageFolder(join(scratch, 'missing')), { code: 'ERR_BAD_FILE', message: `${join(scratch, 'missing')} is not a folder` })
  const none = join(scratch, 'no-classes')
  mkdirSync(none)
  await t.rejects(datasets.imageFolder(none), { code: 'ERR_BAD_FILE', message: /has no class folders/ })
  await t.rejects(datasets.imageFolder(none, { testFraction: 1 }), {
    code: 'ERR_INVALID_ARG', message: 'Expected a number from 0.01 to 0.99 for testFraction but received number 1'
  })
})
