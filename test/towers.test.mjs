// Colour images and the conv4 and resnet18 towers: a folder of coloured shapes (drawn with sharp
// here) trained end to end; model files with every BatchNorm buffer; torchvision's ResNet-18
// weights loaded with init, and our model files loaded into torchvision (Debian's
// python3-torchvision), agreeing within 1e-4; freezing, augmentation, and the guards.
import t from 'tap'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createModel, datasets, loadModel, train } from 'siamese-torch'
import { node, run, root } from './helpers/run.mjs'
import { SHAPE_CLASSES, shapePng, writeShapes } from './helpers/shapes.mjs'
import { smallDigits } from './helpers/small-data.mjs'

const python = '/usr/bin/python3'
const hasTorchvision = existsSync(python) && run(python, ['-c', 'import torchvision']).status === 0
const needsTorchvision = !hasTorchvision && 'needs Debian python3-torchvision (apt-get install python3-torchvision)'
const tool = join(root, 'test', 'interop', 'torchvision_tool.py')

const scratch = mkdtempSync(join(tmpdir(), 'siamese-towers-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))
const shapes = await writeShapes(join(scratch, 'shapes'), { perClass: 30, size: 40, seed: 7 })

/** The tensors of a safetensors file, by name, as Float32Array (floats) or BigInt64Array (int64). */
function readTensors (file) {
  const bytes = readFileSync(file)
  const n = Number(bytes.readBigUInt64LE(0))
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'))
  const metadata = header.__metadata__ ?? {}
  delete header.__metadata__
  const tensors = {}
  for (const [name, { dtype, data_offsets: [begin, end] }] of Object.entries(header)) {
    const raw = bytes.buffer.slice(bytes.byteOffset + 8 + n + begin, bytes.byteOffset + 8 + n + end)
    tensors[name] = dtype === 'I64' ? new BigInt64Array(raw) : new Float32Array(raw)
  }
  return { tensors, metadata }
}

const same = (a, b) => a.length === b.length && a.every((v, i) => v === b[i])
const largestDifference = (rows, theirs) => Math.max(...rows.flatMap((row, i) => Array.from(row, (v, j) => Math.abs(v - theirs[i][j]))))
// The largest difference relative to the largest value: float32 rounding grows with the values.
const largestRelativeDifference = (rows, theirs) => largestDifference(rows, theirs) / Math.max(...theirs.flat().map(Math.abs))

/** `count` random images of w x h x c, as one buffer and as raw images. */
function randomImages (count, width, height, channels, seed) {
  let s = seed
  const data = new Uint8Array(count * width * height * channels).map(() => { s = (s * 1103515245 + 12345) >>> 0; return s >>> 24 })
  const size = width * height * channels
  return { data, images: Array.from({ length: count }, (_, i) => ({ data: data.slice(i * size, (i + 1) * size), width, height, channels })) }
}

t.test('a colour image folder trains the conv4 tower end to end', async (t) => {
  const split = await datasets.imageFolder(shapes, { width: 32, height: 32 })
  t.equal(split.train.channels, 3, 'the shapes are read in colour')
  t.equal(split.stats.mean.length, 3, 'with per-channel statistics')
  const { model, history } = await train({ data: shapes, tower: 'conv4', width: 32, height: 32, embeddingSize: 32, epochs: 4, seed: 1, threads: 2 })
  t.teardown(() => model.dispose())
  const c = model.config
  t.same([c.tower, c.width, c.height, c.channels, c.embeddingSize], ['conv4', 32, 32, 3, 32])
  t.same(c.mean, split.stats.mean, 'normalised by the folder\'s own mean, per channel')
  t.same(c.std, split.stats.std)
  t.comment(`test accuracy after ${history.length} epochs: ${history.map((h) => h.testAccuracy.toFixed(3)).join(', ')}`)
  t.ok(history.at(-1).testAccuracy > 0.6, `the shapes are told apart (${history.at(-1).testAccuracy})`)

  // One image as a file, as encoded bytes, and as raw pixels of another size: the same verdicts.
  const file = join(shapes, 'red-circle', '000.png')
  const bytes = readFileSync(file)
  const decoded = await (await import('sharp')).default(bytes).raw().toBuffer({ resolveWithObject: true })
  const raw = { data: new Uint8Array(decoded.data), width: decoded.info.width, height: decoded.info.height, channels: decoded.info.channels }
  const other = join(shapes, 'blue-triangle', '001.png')
  const [byPath, byBytes, byRaw] = await Promise.all([model.predict(file, other), model.predict(bytes, other), model.predict(raw, other)])
  t.equal(byPath, byBytes, 'a path and its bytes give the same P(same)')
  t.ok(Math.abs(byPath - byRaw) < 1e-6, `raw pixels resized the same way (${byPath} vs ${byRaw})`)
  const sameClass = await model.predict(await shapePng('red-circle', 40, 3), await shapePng('red-circle', 40, 4))
  const otherClass = await model.predict(await shapePng('red-circle', 40, 3), await shapePng('green-square', 40, 4))
  t.ok(sameClass > otherClass, `two red circles (${sameClass.toFixed(3)}) are more alike than a circle and a square (${otherClass.toFixed(3)})`)

  // The model file holds every buffer and gives back the same embeddings.
  const saved = join(scratch, 'conv4.safetensors')
  await model.save(saved)
  const { tensors, metadata } = readTensors(saved)
  t.same([metadata.architecture, metadata.input_channels], ['conv4', '3'])
  t.ok(tensors['layer1.bn.running_mean'] instanceof Float32Array && tensors['layer4.bn.num_batches_tracked'] instanceof BigInt64Array,
    'BatchNorm running statistics and int64 batch counts are written')
  t.ok(tensors['layer1.bn.num_batches_tracked'][0] > 0n, 'and they were updated by training')
  const back = await loadModel(saved)
  t.teardown(() => back.dispose())
  const [a] = await model.embed(file)
  const [b] = await back.embed(file)
  t.ok(same(a, b), 'a loaded model embeds exactly as the saved one (evaluation mode, running statistics)')
  t.same(back.config, model.config)

  // Evaluation and inference do not move the running statistics.
  await model.evaluate(split)
  await model.save(join(scratch, 'conv4-again.safetensors'))
  const again = readTensors(join(scratch, 'conv4-again.safetensors')).tensors
  t.ok(same(again['layer2.bn.running_var'], tensors['layer2.bn.running_var']), 'evaluate() leaves BatchNorm statistics alone')
})

t.test('resnet18 trains on colour images and refuses images of the wrong kind', async (t) => {
  const { model, history } = await train({ data: shapes, tower: 'resnet18', width: 32, height: 32, embeddingSize: 16, epochs: 1, seed: 2, threads: 2 })
  t.teardown(() => model.dispose())
  t.equal(history.length, 1)
  t.equal(model.config.tower, 'resnet18')
  const grey = new Uint8Array(32 * 32)
  await t.rejects(model.embed(grey), { code: 'ERR_INVALID_ARG', message: /3072 values \(32x32x3\)/ }, 'bare pixels must be the model\'s size and channels')
  const [fromGrey] = await model.embed({ data: grey, width: 32, height: 32, channels: 1 })
  t.equal(fromGrey.length, 16, 'a grey raw image is converted to the model\'s colour')
  const digits = await smallDigits()
  await t.rejects(model.evaluate(digits), { code: 'ERR_INVALID_ARG', message: /32x32x3 images, the model's input/ })
})

t.test('init: torchvision ResNet-18 weights, as torchvision computes them', { skip: needsTorchvision }, async (t) => {
  const weights = join(scratch, 'resnet18.safetensors')
  const written = run(python, [tool, 'write-resnet18', weights, '--seed', '5', '--prefix', 'backbone.', '--num-classes', '16', '--extra'])
  t.equal(written.status, 0, written.stderr)
  const mean = [0.485, 0.456, 0.406]
  const std = [0.229, 0.224, 0.225]
  const model = await createModel({ tower: 'resnet18', width: 64, height: 48, channels: 3, embeddingSize: 16, mean, std, init: { path: weights, prefix: 'backbone.' } })
  t.teardown(() => model.dispose())
  const report = model.initReport
  t.equal(report.loaded.length, 122, 'every tensor of torchvision\'s state dict is loaded (62 parameters, 60 buffers)')
  t.same(report.missing, ['linear2.bias', 'linear2.weight'], 'the head is ours alone')
  t.same(report.unexpected, ['extra.weight'], 'a tensor outside the prefix is reported')
  t.same(report.skipped, [])

  const { data, images } = randomImages(3, 64, 48, 3, 11)
  const pixels = join(scratch, 'pixels.bin')
  writeFileSync(pixels, data)
  const py = run(python, [tool, 'features', weights, pixels, '--count', '3', '--width', '64', '--height', '48', '--channels', '3',
    '--mean', mean.join(','), '--std', std.join(','), '--prefix', 'backbone.'])
  t.equal(py.status, 0, py.stderr)
  const theirs = JSON.parse(py.stdout)
  t.comment(`torch ${theirs.torch}, torchvision ${theirs.torchvision}`)
  const ours = await model.embed(images)
  const worst = largestDifference(ours, theirs.outputs)
  t.ok(worst < 1e-4, `our embeddings are torchvision's forward pass (largest difference ${worst.toExponential(2)})`)

  // torchvision's own 1000-class fc is not an embedding layer: skipped, the tower still loaded.
  const imagenet = join(scratch, 'resnet18-1000.safetensors')
  t.equal(run(python, [tool, 'write-resnet18', imagenet, '--seed', '6']).status, 0)
  const fromImagenet = await createModel({ tower: 'resnet18', width: 64, height: 64, channels: 3, init: imagenet })
  t.teardown(() => fromImagenet.dispose())
  t.same(fromImagenet.initReport.skipped.map((s) => s.name), ['fc.bias', 'fc.weight'])
  t.match(fromImagenet.initReport.skipped[1].reason, /has shape \[1000, 512\], the model's \[512, 512\]/)
  t.equal(fromImagenet.initReport.loaded.length, 120)

  // A tower tensor of another shape is refused, naming it.
  await t.rejects(createModel({ tower: 'resnet18', width: 64, height: 64, channels: 1, init: imagenet }),
    { code: 'ERR_BAD_FILE', message: /tensor "conv1\.weight" has shape \[64, 3, 7, 7\], the model's \[64, 1, 7, 7\]/ })
  await t.rejects(createModel({ tower: 'resnet18', init: { path: join(scratch, 'missing.safetensors') } }), { code: 'ERR_BAD_FILE' })
  await t.rejects(createModel({ tower: 'resnet18', init: { path: imagenet, strict: true } }), { code: 'ERR_INVALID_ARG', message: /init/ })
})

t.test('our model files load into torchvision and embed the same', { skip: needsTorchvision }, async (t) => {
  const { data, images } = randomImages(3, 40, 36, 3, 5)
  const pixels = join(scratch, 'ours.bin')
  writeFileSync(pixels, data)
  for (const tower of ['resnet18', 'conv4']) {
    const model = await createModel({ tower, width: 40, height: 36, channels: 3, embeddingSize: 24, mean: [0.5, 0.4, 0.3], std: [0.2, 0.25, 0.3], seed: 3 })
    t.teardown(() => model.dispose())
    // Running statistics away from their defaults: a short training run.
    await model.train({ data: shapes, epochs: 1, fit: 'cover', threads: 2, saveEvery: 0 }).catch((err) => t.fail(err.message))
    const file = join(scratch, `${tower}.safetensors`)
    await model.save(file)
    const py = run(python, [tool, 'embed-ours', file, pixels, '--count', '3'])
    t.equal(py.status, 0, py.stderr)
    const theirs = JSON.parse(py.stdout)
    t.same([theirs.missing, theirs.unexpected], [[], []], `${tower}: every tensor has its torchvision name`)
    const worst = largestRelativeDifference(await model.embed(images), theirs.embeddings)
    t.ok(worst < 1e-5, `${tower}: torchvision embeds as we do (largest difference ${worst.toExponential(2)} of the largest value)`)
  }
})

t.test('freezeTower trains only what is on top, and keeps frozen BatchNorm statistics', async (t) => {
  const model = await createModel({ tower: 'conv4', width: 32, height: 32, channels: 3, embeddingSize: 16, seed: 4 })
  t.teardown(() => model.dispose())
  const before = join(scratch, 'frozen-before.safetensors')
  await model.save(before)
  await model.train({ data: shapes, epochs: 1, freezeTower: 2, threads: 2, saveEvery: 0 })
  const after = join(scratch, 'frozen-after.safetensors')
  await model.save(after)
  const a = readTensors(before).tensors
  const b = readTensors(after).tensors
  for (const name of ['layer1.conv.weight', 'layer2.conv.bias', 'layer2.bn.weight', 'layer1.bn.running_mean', 'layer2.bn.running_var']) {
    t.ok(same(a[name], b[name]), `${name} is frozen`)
  }
  for (const name of ['layer3.conv.weight', 'layer4.bn.running_mean', 'fc.weight', 'linear2.weight']) {
    t.notOk(same(a[name], b[name]), `${name} trains`)
  }
  t.equal(b['layer1.bn.num_batches_tracked'][0], 0n, 'a frozen BatchNorm counts no batches')
  // Frozen for that run only: the next trains everything.
  await model.train({ data: shapes, epochs: 1, threads: 2, saveEvery: 0 })
  await model.save(after)
  t.notOk(same(readTensors(after).tensors['layer1.conv.weight'], a['layer1.conv.weight']), 'the next run trains the whole tower')
  await t.rejects(model.train({ data: shapes, epochs: 1, freezeTower: 5 }), { code: 'ERR_INVALID_ARG', message: /0 to 4 \(the conv4 tower's stages\)/ })
  await t.rejects(model.train({ data: shapes, epochs: 1, freezeTower: 'yes' }), { code: 'ERR_INVALID_ARG', message: /freezeTower/ })
})

t.test('augmentation: seeded, reproducible, and off by default', async (t) => {
  const run1 = async (augment) => {
    const { model } = await train({ data: shapes, tower: 'conv4', width: 32, height: 32, embeddingSize: 16, epochs: 1, seed: 9, threads: 1, augment })
    const [e] = await model.embed(join(shapes, 'green-square', '002.png'))
    model.dispose()
    return e
  }
  const plain = await run1(undefined)
  const augmented = await run1({ crop: [0.6, 1], flip: true, rotate: 20, brightness: 0.3, contrast: 0.3 })
  const again = await run1({ crop: [0.6, 1], flip: true, rotate: 20, brightness: 0.3, contrast: 0.3 })
  t.ok(same(augmented, again), 'the same seed and augmentation give the same weights')
  t.notOk(same(plain, augmented), 'augmentation changes the batches')
  t.ok(same(plain, await run1(false)), 'augment: false is no augmentation')
  await t.rejects(train({ data: shapes, epochs: 1, tower: 'conv4', augment: { rotate: 400 } }),
    { code: 'ERR_INVALID_ARG', message: 'Expected a number from 0 to 180 for augment.rotate but received number 400' })
  await t.rejects(train({ data: shapes, epochs: 1, tower: 'conv4', augment: { twirl: 1 } }), { code: 'ERR_INVALID_ARG', message: /augment\.twirl/ })
})

t.test('sizes, channels and the reference tower\'s growth are checked up front', async (t) => {
  await t.rejects(createModel({ width: 224, height: 224 }), { code: 'ERR_INVALID_ARG', message: /'conv4' or 'resnet18' for images this large: the reference tower at 224x224 has [\d.]+ million parameters/ })
  await t.rejects(createModel({ width: 16, height: 16 }), { code: 'ERR_INVALID_ARG', message: /at least 24 pixels \(the smallest the reference tower takes/ })
  await t.rejects(createModel({ tower: 'conv4', width: 600 }), { code: 'ERR_INVALID_ARG', message: 'Expected an integer from 16 to 512 for width but received number 600' })
  await t.rejects(createModel({ channels: 2 }), { code: 'ERR_INVALID_ARG', message: /1 \(grey\) or 3 \(RGB\)/ })
  await t.rejects(createModel({ channels: 3, mean: [0.1, 0.2] }), { code: 'ERR_INVALID_ARG', message: /mean/ })
  const small = await createModel({ tower: 'conv4', width: 16, height: 16 })
  t.same([small.config.channels, small.config.mean], [1, [0.1307]], 'grey by default, with the recipe\'s normalisation')
  small.dispose()
  const warnings = []
  const onWarning = (w) => warnings.push(w)
  process.on('warning', onWarning)
  const big = await createModel({ width: 64, height: 48 })
  await new Promise((resolve) => setImmediate(resolve))
  process.off('warning', onWarning)
  big.dispose()
  t.match(warnings.map((w) => `${w.code}: ${w.message}`).join('\n'), /SIAMESE_TORCH_LARGE_TOWER: .*64x48 has 36\.8 million parameters \(147 MB a model file/)
  const digits = await smallDigits()
  await t.rejects(train({ data: digits, channels: 3, epochs: 1 }), { code: 'ERR_INVALID_ARG', message: /channels/ })
  await t.rejects(train({ data: digits, width: 64, epochs: 1 }), { code: 'ERR_INVALID_ARG', message: /the data's size, 28x28/ })
})

t.test('the command line trains a colour folder and draws augmented examples', async (t) => {
  const out = join(scratch, 'cli-out')
  const result = node(['dist/cli.js', 'train', '--data', shapes, '--tower', 'conv4', '--size', '32x32', '--fit', 'cover', '--epochs', '1',
    '--embedding-size', '16', '--augment', '--freeze-tower', '1', '--mean', '0.5,0.5,0.5', '--std', '0.25', '--threads', '2', '--out', out])
  t.equal(result.status, 0, result.stderr)
  for (const file of ['model.safetensors', 'augmented.png', 'augmented.svg', 'pairs.png', 'embeddings.png']) {
    t.ok(existsSync(join(out, file)), `${file} written`)
  }
  const { metadata } = readTensors(join(out, 'model.safetensors'))
  t.same([metadata.architecture, metadata.input_width, metadata.input_channels, metadata.norm_mean, metadata.norm_std],
    ['conv4', '32', '3', '[0.5,0.5,0.5]', '[0.25,0.25,0.25]'])
  const options = JSON.parse(metadata.train_options)
  t.same([options.fit, options.freezeTower, options.augment.flip], ['cover', 1, true], 'the run records fit, freezing and augmentation')
  // eval and classify read colour folders as the model was trained: its size, channels and fit.
  const evaluated = node(['dist/cli.js', 'eval', join(out, 'model.safetensors'), '--data', shapes, '--ways', '0', '--json'])
  t.equal(evaluated.status, 0, evaluated.stderr)
  t.ok(JSON.parse(evaluated.stdout).pairs > 0, 'eval --data <colour folder>')
  const classified = node(['dist/cli.js', 'classify', join(out, 'model.safetensors'), join(shapes, 'red-circle', '004.jpg'), '--support', shapes, '--json'])
  t.equal(classified.status, 0, classified.stderr)
  t.same(Object.keys(JSON.parse(classified.stdout).scores), SHAPE_CLASSES.slice().sort(), 'classify --support <colour folder>')
  const bad = node(['dist/cli.js', 'train', '--data', shapes, '--size', '32by32', '--out', out])
  t.not(bad.status, 0)
  t.match(bad.stderr, /--size: expected WIDTHxHEIGHT/)
  t.equal(SHAPE_CLASSES.length, 4)
})

t.test('reads during training use the running statistics and change nothing', async (t) => {
  // Two identical runs, one with predict and embed called throughout: the same weights and
  // BatchNorm statistics at the end, bit for bit (inference runs in evaluation mode, between steps).
  const image = join(shapes, 'yellow-diamond', '003.png')
  const runOnce = async (read) => {
    const model = await createModel({ tower: 'conv4', width: 32, height: 32, channels: 3, embeddingSize: 16, seed: 5 })
    const [before] = await model.embed(image)
    const state = { reads: 0, training: true }
    const reader = async () => {
      for (; state.training; state.reads++) {
        await model.embed(image)
        await model.predict(image, image)
      }
    }
    const reading = read ? reader() : Promise.resolve()
    await model.train({ data: shapes, epochs: 2, threads: 1, seed: 5, saveEvery: 0 })
    state.training = false
    await reading
    const reads = state.reads
    const file = join(scratch, `reads-${read}.safetensors`)
    await model.save(file)
    const [after] = await model.embed(image)
    model.dispose()
    return { tensors: readTensors(file).tensors, reads, before, after }
  }
  const quiet = await runOnce(false)
  const busy = await runOnce(true)
  t.ok(busy.reads > 0, `${busy.reads} reads during training`)
  const differing = Object.keys(quiet.tensors).filter((name) => !same(quiet.tensors[name], busy.tensors[name]))
  t.same(differing, [], 'every weight and running statistic is the same')
  t.ok(same(quiet.after, busy.after), 'and so are the embeddings')
})
