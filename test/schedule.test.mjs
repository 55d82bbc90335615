// The learning-rate schedule: the rate of every step as the formula says, a resume that continues
// the schedule bit for bit, the recipe's constant rate under pairs 'reference', bad values refused.
import t from 'tap'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createModel, datasets, defaults, train } from 'siamese-torch'
import { resolveTrainingSettings } from '../dist/options.js'
import { smallDigits } from './helpers/small-data.mjs'

const data = await smallDigits()
const scratch = mkdtempSync(join(tmpdir(), 'siamese-schedule-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

function weightBytes (file) {
  const buffer = readFileSync(file)
  return buffer.subarray(8 + Number(buffer.readBigUInt64LE(0)))
}

// docs/recipe.md, section 5: linear warm-up over `warmup` epochs' steps, then constant or a half cosine to 0.
function expectedLr ({ lr, lrSchedule, warmup, epochs }, epoch, batch, batches) {
  const step = (epoch - 1) * batches + batch - 1
  const total = epochs * batches
  const warm = Math.min(total, Math.round(warmup * batches))
  if (step < warm) return lr * (step + 1) / warm
  if (lrSchedule === 'constant') return lr
  return lr * 0.5 * (1 + Math.cos(Math.PI * Math.min(1, (step - warm) / Math.max(1, total - warm))))
}

t.test('the rate of each step: warm-up, then a half cosine to 0 over the whole run', async (t) => {
  const settings = { lr: 0.002, lrSchedule: 'cosine', warmup: 0.5, epochs: 2 }
  const events = []
  const { model } = await train({ data, ...settings, threads: 1, onProgress: (e) => { if (e.type === 'batch') events.push(e) } })
  model.dispose()
  t.ok(events.length >= 2, `${events.length} batch events`)
  for (const e of events) {
    const want = expectedLr(settings, e.epoch, e.batch, e.batches)
    t.ok(Math.abs(e.lr - want) <= 1e-12 * settings.lr, `epoch ${e.epoch} batch ${e.batch}: lr ${e.lr}, expected ${want}`)
  }
  const last = events.at(-1)
  t.equal(last.batch, last.batches, 'the last step is reported')
  t.ok(last.lr > 0 && last.lr < settings.lr / 50, `the last step's rate is near 0 (${last.lr})`)
})

t.test('a resume continues the schedule: the same weights as an uninterrupted run', async (t) => {
  // Warm-up ends in epoch 2: the resumed epoch warms up, then anneals.
  const settings = { data, epochs: 2, lrSchedule: 'cosine', warmup: 1.5, lr: 0.002, seed: 5, threads: 1 }
  const full = join(scratch, 'full')
  const { model: a } = await train({ ...settings, saveEvery: 1, outDir: full })
  t.match(JSON.parse(a.metadata.train_options), { lrSchedule: 'cosine', warmup: 1.5, lr: 0.002 }, 'the schedule is recorded')
  a.dispose()
  const resumed = join(scratch, 'resumed')
  const { model: b, history } = await train({ resume: join(full, 'checkpoint-epoch-1.safetensors'), data, outDir: resumed })
  b.dispose()
  t.same(history.map((h) => h.epoch), [2], 'resumed with the recorded settings')
  t.ok(weightBytes(join(full, 'model.safetensors')).equals(weightBytes(join(resumed, 'model.safetensors'))), 'identical weights')
})

t.test("pairs 'reference' and mining keep the recipe's constant rate and batch; the defaults schedule it", async (t) => {
  t.same(defaults.recipe, { lr: 0.001, lrSchedule: 'constant', warmup: 0, batchSize: 64 })
  for (const options of [{ pairs: 'reference' }, { mining: 'batch-hard' }]) {
    const recipe = resolveTrainingSettings(options, undefined)
    for (const [key, value] of Object.entries(defaults.recipe)) t.equal(recipe[key], value, `${JSON.stringify(options)}: ${key} is the recipe's`)
  }
  t.equal(resolveTrainingSettings({ pairs: 'reference', lrSchedule: 'cosine', warmup: 1 }, undefined).lrSchedule, 'cosine', 'unless given')
  t.equal(resolveTrainingSettings({}, undefined).lrSchedule, defaults.training.lrSchedule, 'balanced: the defaults')
  const old = { path: 'old.safetensors', epoch: 1, options: { pairs: 'balanced', lr: 0.001 }, dataSource: 'embedded', dataName: 'embedded', dataFingerprint: '' }
  t.match(resolveTrainingSettings({}, old), { lrSchedule: 'constant', warmup: 0 }, 'a checkpoint from before schedules resumes at the constant rate it trained with')
  t.match(resolveTrainingSettings({}, { ...old, options: { ...old.options, lrSchedule: 'cosine', warmup: 0.25 } }), { lrSchedule: 'cosine', warmup: 0.25 }, 'a recorded schedule is kept')
  t.match(resolveTrainingSettings({}, { ...old, options: { pairs: 'reference', lrSchedule: 'cosine' } }), { lrSchedule: 'cosine' }, 'by the recipe too')

  // A run of the reference scheme (600 images a class: two classes of the embedded digits): every step at lr.
  const { train: all } = await datasets.embedded()
  const twoClasses = (set) => {
    const picked = [...set.labels.keys()].filter((i) => set.labels[i] < 2)
    const images = new Uint8Array(picked.length * 784)
    picked.forEach((k, j) => images.set(set.images.subarray(k * 784, (k + 1) * 784), j * 784))
    return datasets.fromArrays({ images, labels: picked.map((k) => set.labels[k]), width: 28, height: 28, classes: ['0', '1'] })
  }
  const events = []
  const recipeData = { train: twoClasses(all), test: twoClasses(data.test) }
  const { model } = await train({ data: recipeData, pairs: 'reference', epochs: 1, threads: 1, onProgress: (e) => { if (e.type === 'batch') events.push(e) } })
  t.match(JSON.parse(model.metadata.train_options), { pairs: 'reference', lrSchedule: 'constant', warmup: 0, lr: 0.001, batchSize: 64 }, 'recorded')
  t.ok(events.length >= 1 && events.every((e) => e.lr === 0.001), `every step at 0.001 (${events.length} events)`)
  // The recipe's initialisation is PyTorch's ('torch'), whatever the default for other models.
  const saved = async (m, name) => {
    const file = join(scratch, `${name}.safetensors`)
    await m.save(file)
    m.dispose()
    return weightBytes(file)
  }
  const plain = await saved(model, 'recipe-default')
  const torch = await saved((await train({ data: recipeData, pairs: 'reference', epochs: 1, threads: 1, weightInit: 'torch' })).model, 'recipe-torch')
  const xavier = await saved((await train({ data: recipeData, pairs: 'reference', epochs: 1, threads: 1, weightInit: 'xavier' })).model, 'recipe-xavier')
  t.ok(plain.equals(torch), "the recipe trains from weightInit 'torch', bit for bit")
  t.notOk(plain.equals(xavier), 'an explicit weightInit wins')
})

// A safetensors file's float32 tensor `name`, as a Float32Array.
function tensorOf (file, name) {
  const buffer = readFileSync(file)
  const headerLength = Number(buffer.readBigUInt64LE(0))
  const entry = JSON.parse(buffer.subarray(8, 8 + headerLength).toString('utf8'))[name]
  const [begin, end] = entry.data_offsets.map((o) => 8 + headerLength + o)
  return new Float32Array(buffer.buffer.slice(buffer.byteOffset + begin, buffer.byteOffset + end))
}

t.test("weightInit: 'xavier' by default for a new reference-tower model, 'torch' on request and for the other towers", async (t) => {
  const file = async (options, name) => {
    const model = await createModel({ seed: 5, ...options })
    const path = join(scratch, `init-${name}.safetensors`)
    await model.save(path)
    model.dispose()
    return path
  }
  const byDefault = await file({}, 'default')
  const xavier = await file({ weightInit: 'xavier' }, 'xavier')
  const torch = await file({ weightInit: 'torch' }, 'torch')
  t.ok(weightBytes(byDefault).equals(weightBytes(xavier)), "the default is 'xavier', drawn from the seed")
  t.ok(weightBytes(xavier).equals(weightBytes(await file({ weightInit: 'xavier' }, 'xavier-again'))), 'the same seed, the same weights')
  // conv1: fan_in 1 x 7 x 7, fan_out 64 x 7 x 7. Xavier: uniform in +-sqrt(6 / (fan_in + fan_out)), biases 0;
  // PyTorch's: uniform in +-1/sqrt(fan_in) (kaiming_uniform_ with a = sqrt(5)), biases too.
  const xavierBound = Math.sqrt(6 / (49 + 64 * 49))
  const maxAbs = (a) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0)
  for (const layer of ['conv1', 'conv2', 'conv3', 'linear1']) {
    t.ok(tensorOf(xavier, `${layer}.bias`).every((v) => v === 0), `xavier: ${layer}'s biases are 0`)
  }
  t.ok(maxAbs(tensorOf(xavier, 'conv1.weight')) <= xavierBound, 'xavier: conv1 within its bound')
  t.ok(maxAbs(tensorOf(torch, 'conv1.weight')) > xavierBound * 1.5, "torch: conv1 spread to PyTorch's wider bound")
  t.ok(maxAbs(tensorOf(torch, 'conv1.bias')) > 0, 'torch: biases drawn')
  t.same(tensorOf(xavier, 'linear2.weight'), tensorOf(torch, 'linear2.weight'), 'the head is drawn as PyTorch does either way')
  const conv4 = await file({ tower: 'conv4', width: 32, height: 32 }, 'conv4')
  const conv4Torch = await file({ tower: 'conv4', width: 32, height: 32, weightInit: 'torch' }, 'conv4-torch')
  t.ok(weightBytes(conv4).equals(weightBytes(conv4Torch)), "conv4 defaults to 'torch'")
  await t.rejects(createModel({ weightInit: 'he' }), { code: 'ERR_INVALID_ARG', message: "Expected one of 'torch', 'xavier' for weightInit but received string \"he\"" })
  await t.rejects(train({ data, resume: byDefault, weightInit: 'torch' }), { code: 'ERR_INVALID_ARG', message: /no weightInit with resume/ })
})

t.test('bad values are refused before any work', async (t) => {
  const cases = [
    [{ lrSchedule: 'step' }, "Expected one of 'constant', 'cosine' for lrSchedule but received string \"step\""],
    [{ warmup: -1 }, 'Expected a number from 0 to 1000000 for warmup but received number -1'],
    [{ warmup: '1' }, 'Expected a number from 0 to 1000000 for warmup but received string "1"']
  ]
  for (const [options, message] of cases) {
    const events = []
    await t.rejects(train({ data, ...options, onProgress: (e) => events.push(e) }), { code: 'ERR_INVALID_ARG', message }, JSON.stringify(options))
    t.same(events, [], 'no batch was trained')
  }
})
