// The first slice through every layer: TypeScript -> Node-API -> LibTorch and back.
import t from 'tap'
import { createRequire } from 'node:module'
import * as esm from 'siamese-torch'
import { version, SiameseTorchError } from 'siamese-torch'
import { node, root } from './helpers/run.mjs'

const require = createRequire(import.meta.url)
const { findLibtorch } = require('../scripts/find-libtorch.js')
const found = findLibtorch().found

t.test('version() reports what the linked LibTorch is', async (t) => {
  const v = version()
  t.same(Object.keys(v).sort(), [
    'bf16', 'cpus', 'cuda', 'cudaBuild', 'cudaDevices', 'distributed', 'gpus', 'libtorch', 'libtorchLibrary', 'libtorchSource',
    'siameseTorch', 'threads', 'threadsBasis'
  ])
  t.equal(v.siameseTorch, require('../package.json').version)
  t.equal(v.libtorch, found.version, 'the headers compiled in are the ones the finder found')
  t.equal(v.libtorchSource, found.source)
  t.ok(v.libtorchLibrary.startsWith(found.libDir), `libtorch loaded from ${v.libtorchLibrary}`)
  t.equal(v.cudaBuild, found.cuda)
  t.equal(v.cudaDevices, v.gpus.length)
  if (!v.cuda) t.equal(v.cudaDevices, 0, 'no CUDA, no devices')
  t.ok(Number.isInteger(v.threads) && v.threads >= 1, `threads = ${v.threads}`)
  t.ok(Number.isInteger(v.cpus) && v.cpus >= 1, `cpus = ${v.cpus}`)
  t.type(v.bf16, 'boolean')
  t.same(v.distributed, found.distributed, 'the distributed back-ends the finder found the headers of')
})

t.test('the ES module and CommonJS entry points share one implementation', async (t) => {
  const cjs = require('siamese-torch')
  t.equal(esm.version, cjs.version)
  t.equal(esm.SiameseTorchError, cjs.SiameseTorchError)
  t.same(Object.keys(esm).sort(), Object.keys(cjs).filter((k) => k !== '__esModule').sort(),
    'ESM exports every CommonJS export')
  t.same(cjs.version(), version())
})

t.test('a CommonJS program and an ES module program print the versions', async (t) => {
  const cjs = node(['-e', "console.log(JSON.stringify(require('siamese-torch').version()))"])
  t.equal(cjs.status, 0, cjs.stderr)
  const mjs = node(['--input-type=module', '-e',
    "import { version } from 'siamese-torch'; console.log(JSON.stringify(version()))"])
  t.equal(mjs.status, 0, mjs.stderr)
  t.same(JSON.parse(cjs.stdout), JSON.parse(mjs.stdout))
  t.equal(JSON.parse(mjs.stdout).libtorch, found.version)
})

t.test('SiameseTorchError carries a code, a path and a cause', async (t) => {
  const cause = new Error('inner')
  const err = new SiameseTorchError('bad file', 'ERR_BAD_FILE', { path: '/tmp/x', cause })
  t.ok(err instanceof Error)
  t.equal(err.name, 'SiameseTorchError')
  t.equal(err.code, 'ERR_BAD_FILE')
  t.equal(err.path, '/tmp/x')
  t.equal(err.cause, cause)
  t.notOk('path' in new SiameseTorchError('x', 'ERR_TORCH'), 'no path property when none is given')
})

t.test('the package root is where the tests think it is', async (t) => {
  t.equal(require.resolve('siamese-torch'), `${root}/dist/index.js`)
})
