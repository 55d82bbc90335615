// The published declarations compile for ESM and CommonJS consumers under TypeScript 5 and 7,
// and the assertions in test/types fail when the types drift.
import t from 'tap'
import { join } from 'node:path'
import { node, root } from './helpers/run.mjs'

const compilers = {
  'TypeScript 7': join(root, 'node_modules', 'typescript7', 'bin', 'tsc'),
  'TypeScript 5': join(root, 'node_modules', 'typescript', 'bin', 'tsc')
}

for (const [name, tsc] of Object.entries(compilers)) {
  t.test(`test/types compiles with ${name}`, async (t) => {
    const r = node([tsc, '-p', join(root, 'test', 'types', 'tsconfig.json')])
    t.equal(r.status, 0, r.stdout + r.stderr)
  })
}

// A consumer has only our dependencies' own types, not our devDependencies' @types packages: the
// declarations may import Node's modules and each other, nothing else.
t.test('the published declarations import only node: modules and each other', async (t) => {
  const { readdirSync, readFileSync } = await import('node:fs')
  const dist = join(root, 'dist')
  const declarations = readdirSync(dist, { recursive: true }).filter((f) => /\.d\.m?ts$/.test(f))
  t.ok(declarations.length > 10, `${declarations.length} declaration files`)
  const outside = declarations.flatMap((f) => [...readFileSync(join(dist, f), 'utf8').matchAll(/^(?:import|export)\b[^'"\n]*from\s+'([^'.][^']*)'/gm)]
    .map((m) => m[1]).filter((spec) => !spec.startsWith('node:')).map((spec) => `${f}: ${spec}`))
  t.same(outside, [])
})
