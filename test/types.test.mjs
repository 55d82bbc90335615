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
