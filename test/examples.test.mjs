// The README's examples run for real: the TypeScript one with ts-node and TypeScript 5 (what
// ts-node users have: it cannot run on TypeScript 7, which has no JavaScript compiler API).
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { node, root } from './helpers/run.mjs'

const readme = readFileSync(join(root, 'README.md'), 'utf8')

t.test('the ts-node example in the README runs', async (t) => {
  const example = readFileSync(join(root, 'examples', 'quickstart.ts'), 'utf8')
  const body = example.split('\n').filter((l) => !l.startsWith('// The README')).join('\n').trim()
  t.ok(readme.includes(body), 'README.md shows examples/quickstart.ts as it is')
  const r = node([join(root, 'node_modules', 'ts-node', 'dist', 'bin.js'), join(root, 'examples', 'quickstart.ts')], {
    env: { TS_NODE_PROJECT: join(root, 'examples', 'tsconfig.json') }
  })
  t.equal(r.status, 0, r.stderr)
  const result = JSON.parse(r.stdout.trim().split('\n').at(-1))
  t.ok(result.accuracy > 0.5, `accuracy ${result.accuracy}`)
  t.ok(result.pSame >= 0 && result.pSame <= 1)
})
