// One contract: lib/contract.ts and native/core/contract.h list the same choices and defaults,
// the public types and the command line come from it, and nothing else restates it.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { choices, defaults } from 'siamese-torch'
import { binding } from '../dist/binding.js'
import { node, root } from './helpers/run.mjs'

t.test('the C++ header and the TypeScript module agree', async (t) => {
  const native = binding().contract()
  t.same(native.losses, choices.loss)
  t.same(native.minings, choices.mining)
  t.same(native.optimizers, choices.optimizer)
  t.same(native.pairSchemes, choices.pairs)
  t.same(native.towers, choices.tower)
  t.same(native.lrSchedules, choices.lrSchedule)
  t.same(native.weightInits, choices.weightInit)
  const ts = { ...defaults.model, ...defaults.training }
  for (const [key, value] of Object.entries(native.defaults)) t.equal(value, ts[key], `default ${key}`)
  t.same(native.recipe, defaults.recipe, "the recipe's values where the defaults differ")
})

t.test('the command line shows the contract: choices and defaults in --help', async (t) => {
  const help = node(['dist/cli.js', 'train', '--help']).stdout.replace(/\s+/g, ' ')
  t.match(help, '--loss <name>')
  t.match(help, '--batch-size <n>')
  t.match(help, '--lr <x>')
  t.match(help, `(choices: ${choices.loss.map((c) => `"${c}"`).join(', ')})`)
  t.match(help, `(choices: ${choices.mining.map((c) => `"${c}"`).join(', ')})`)
  t.match(help, `triplets per batch (2 labelled pairs each) (default: ${defaults.training.batchSize}; ${defaults.recipe.batchSize} with --pairs reference or --mining)`)
  t.match(help, `learning rate, the peak of a schedule (default: ${defaults.training.lr}; ${defaults.recipe.lr} with --pairs reference or --mining)`)
})

t.test('no default is restated outside the contract', async (t) => {
  // The old copies: `x === undefined ? <default> : check(x)` in every module.
  for (const file of ['options.ts', 'model.ts', 'training.ts', 'cli.ts', 'datasets/catalog.ts', 'datasets/sampling.ts', 'datasets/image-folder.ts']) {
    const text = readFileSync(join(root, 'lib', file), 'utf8')
    t.notMatch(text, /=== undefined \? (\d|'\w)/, `${file} reads defaults from the contract`)
  }
})
