// The README's examples run for real, as written: the quick start with Node, and the TypeScript
// ones with ts-node and TypeScript 5 (what ts-node users have: it cannot run on TypeScript 7,
// which has no JavaScript compiler API), as CommonJS and as an ES module, in a project laid out as
// the README says (its tsconfig, its commands), with this package installed in node_modules.
import t from 'tap'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { node, root } from './helpers/run.mjs'

const readme = readFileSync(join(root, 'README.md'), 'utf8')
const example = (file) => readFileSync(join(root, 'examples', file), 'utf8')
// An example as the README shows it: the file less its first comment line (which names the test).
const shown = (file) => example(file).split('\n').filter((l, i) => !(i === 0 && l.startsWith('// '))).join('\n').trim()

/** An empty project with this package (and, for TypeScript, ts-node, typescript and @types/node) installed. */
function project (t, ...packages) {
  const dir = mkdtempSync(join(tmpdir(), 'siamese-example-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ private: true }))
  mkdirSync(join(dir, 'node_modules', '@types'), { recursive: true })
  symlinkSync(root, join(dir, 'node_modules', 'siamese-torch'))
  for (const p of packages) symlinkSync(join(root, 'node_modules', p), join(dir, 'node_modules', p))
  return dir
}

t.test('the quick start in the README runs as written', async (t) => {
  t.ok(readme.includes(shown('quickstart.mjs')), 'README.md shows examples/quickstart.mjs as it is')
  const dir = project(t)
  writeFileSync(join(dir, 'quickstart.mjs'), example('quickstart.mjs'))
  const r = node(['quickstart.mjs'], { cwd: dir })
  t.equal(r.status, 0, r.stderr)
  const lines = r.stdout.trim().split('\n')
  t.match(lines[0], /^epoch 1: \d+\.\d% of test pairs right$/, 'one line an epoch, not one a batch')
  t.match(lines[1], /^epoch 2: \d+\.\d% of test pairs right$/)
  t.ok(Number(/(\d+\.\d)%/.exec(lines[1])[1]) > 90, `two epochs: ${lines[1]}`)
  const [, same] = /P\(same\) for two \d+s: (\d\.\d+)/.exec(r.stdout) ?? []
  const [, different] = /P\(same\) for a \d+ and a \d+: (\d\.\d+)/.exec(r.stdout) ?? []
  t.ok(Number(same) > 0.5 && Number(different) < 0.5, `same class ${same}, other classes ${different}`)
  t.ok(existsSync(join(dir, 'digits.safetensors')), 'the model is saved')
})

t.test('the colour image-folder session in the README runs as written', async (t) => {
  t.ok(readme.includes(shown('colour.mjs')), 'README.md shows examples/colour.mjs as it is')
  const dir = project(t, 'sharp')
  writeFileSync(join(dir, 'colour.mjs'), example('colour.mjs'))
  const r = node(['colour.mjs'], { cwd: dir })
  t.equal(r.status, 0, r.stderr)
  t.match(r.stdout, /^conv4, 48x48x3, mean \d\.\d{3}, \d\.\d{3}, \d\.\d{3}$/m, 'a colour model normalised by the folder\'s own statistics')
  const [, accuracy] = /test accuracy after 6 epochs: (\d+\.\d)%/.exec(r.stdout) ?? []
  t.ok(Number(accuracy) > 80, `the shapes are told apart (${accuracy}%)`)
  const [, same, other] = /P\(same\) for two circles: (\d\.\d+), for a circle and a square: (\d\.\d+)/.exec(r.stdout) ?? []
  t.ok(Number(same) > 0.5 && Number(other) < 0.5, `two circles ${same}, a circle and a square ${other}`)
  for (const file of ['shapes-out/model.safetensors', 'shapes/triangle/39.jpg']) t.ok(existsSync(join(dir, file)), `${file} written`)
})

t.test('TypeScript with ts-node, CommonJS and ES module, with the README\'s tsconfig and commands', async (t) => {
  const tsconfig = readFileSync(join(root, 'examples', 'typescript', 'tsconfig.json'), 'utf8').trim()
  t.ok(readme.includes(tsconfig), 'README.md shows the tsconfig.json')
  t.ok(readme.includes('npx ts-node quickstart.ts') && readme.includes('node --loader ts-node/esm quickstart.mts'), 'and both commands')
  const dir = project(t, 'ts-node', 'typescript', '@types/node')
  for (const file of ['tsconfig.json', 'quickstart.ts', 'quickstart.mts']) {
    writeFileSync(join(dir, file), readFileSync(join(root, 'examples', 'typescript', file)))
  }
  const runs = {
    CommonJS: node([join(dir, 'node_modules', 'ts-node', 'dist', 'bin.js'), 'quickstart.ts'], { cwd: dir }), // npx ts-node quickstart.ts
    'ES module': node(['--loader', 'ts-node/esm', 'quickstart.mts'], { cwd: dir })
  }
  for (const [kind, r] of Object.entries(runs)) {
    t.equal(r.status, 0, `${kind}: ${r.stderr}`)
    const result = JSON.parse(r.stdout.trim().split('\n').at(-1))
    t.ok(result.accuracy > 0.5, `${kind}: accuracy ${result.accuracy}`)
    t.ok(result.pSame >= 0 && result.pSame <= 1, `${kind}: P(same) ${result.pSame}`)
  }
  // ts-node type-checks: a type error in the example fails the run.
  writeFileSync(join(dir, 'broken.ts'), "import { train } from 'siamese-torch'\nvoid train({ epochs: 'two' })\n")
  const broken = node([join(dir, 'node_modules', 'ts-node', 'dist', 'bin.js'), 'broken.ts'], { cwd: dir })
  t.not(broken.status, 0)
  t.match(broken.stderr, /TS2322/, 'the types are checked')
})
