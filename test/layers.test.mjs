// Imports in lib/ run downward only: no module imports one that (directly or not) imports it back,
// and binding.ts, the wire to the addon, imports nothing above it. A type-only import counts: a
// cycle of types is still a cycle a reader has to untangle.
import t from 'tap'
import { readFileSync, readdirSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { root } from './helpers/run.mjs'

const lib = join(root, 'lib')

function sources (dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name)
    return e.isDirectory() ? sources(path) : /\.m?ts$/.test(e.name) ? [path] : []
  })
}

// Relative imports of each module, as module paths (./x.js -> lib/x.ts).
const graph = new Map()
for (const file of sources(lib)) {
  const text = readFileSync(file, 'utf8')
  const imports = [...text.matchAll(/^\s*(?:import|export)\b[^'"]*?from\s+'(\.[^']+)'/gm)].map(([, spec]) => {
    const target = resolve(dirname(file), spec).replace(/\.m?js$/, '')
    return relative(lib, [`${target}.ts`, `${target}.mts`].find((f) => sources(dirname(f)).includes(f)) ?? target)
  })
  graph.set(relative(lib, file), imports)
}

t.test('the import graph of lib/ has no cycle', async (t) => {
  t.ok(graph.size > 10, `${graph.size} modules read`)
  const state = new Map() // module -> 'open' | 'done'
  const cycles = []
  const visit = (module, path) => {
    if (state.get(module) === 'done') return
    if (state.get(module) === 'open') {
      cycles.push([...path.slice(path.indexOf(module)), module].join(' -> '))
      return
    }
    state.set(module, 'open')
    for (const next of graph.get(module) ?? []) visit(next, [...path, module])
    state.set(module, 'done')
  }
  for (const module of graph.keys()) visit(module, [])
  t.same(cycles, [], 'no cycles')
})

t.test('binding.ts describes the wire itself: it imports only the layers below it', async (t) => {
  t.same(graph.get('binding.ts').sort(), ['contract.ts', 'distributed.ts', 'errors.ts'])
  for (const bottom of ['errors.ts', 'validate.ts', 'contract.ts', 'progress.ts', 'distributed.ts']) {
    t.notOk((graph.get(bottom) ?? []).some((m) => !['errors.ts', 'validate.ts'].includes(m)), `${bottom} sits at the bottom`)
  }
})
