// The loader names every path it tried, why each failed, and the command that rebuilds.
import t from 'tap'
import { mkdtempSync, writeFileSync, rmSync, copyFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRequire } from 'node:module'
import { run, node, root } from './helpers/run.mjs'

const require = createRequire(import.meta.url)

const scratch = mkdtempSync(join(tmpdir(), 'siamese-loader-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

// Loads the package in a child with SIAMESE_TORCH_ADDON=file and returns the error it throws.
function loadError (file, env = {}) {
  const r = node(['-e', `
    const { version } = require('siamese-torch')
    try { version(); console.log('loaded') } catch (err) {
      console.log(JSON.stringify({ name: err.name, code: err.code, message: err.message }))
    }`], { env: { ...env, SIAMESE_TORCH_ADDON: file } })
  if (r.status !== 0) throw new Error(r.stderr)
  return r.stdout.trim() === 'loaded' ? null : JSON.parse(r.stdout)
}

function compileSharedObject (name, source, args = []) {
  const src = join(scratch, `${name}.cc`)
  writeFileSync(src, source)
  const out = join(scratch, name)
  const r = run('g++', ['-shared', '-fPIC', '-o', out, src, ...args], { cwd: scratch })
  if (r.status !== 0) throw new Error(r.stderr)
  return out
}

t.test('a missing addon: not built, with the rebuild command', async (t) => {
  const file = join(scratch, 'absent.node')
  const err = loadError(file)
  t.equal(err.name, 'SiameseTorchError')
  t.equal(err.code, 'ERR_ADDON_LOAD')
  t.match(err.message, `  - ${file}: not built (no such file)`)
  t.match(err.message, `Rebuild it with: npm run build:native (in ${root})`)
})

t.test('a file that is not a shared object: wrong platform', async (t) => {
  const file = join(scratch, 'garbage.node')
  writeFileSync(file, 'this is not an ELF file at all, just text padded out to be long enough\n'.repeat(4))
  t.match(loadError(file).message, `${file}: built for another platform or architecture`)
})

t.test('a library the addon needs is gone: names the missing library', async (t) => {
  const dep = compileSharedObject('libgone.so', 'int gone_value() { return 1; }\n')
  const file = compileSharedObject('needs-gone.node', 'int gone_value();\nint use() { return gone_value(); }\n',
    [`-L${scratch}`, '-lgone', `-Wl,-rpath,${scratch}`])
  rmSync(dep)
  const err = loadError(file)
  t.match(err.message, `${file}: a library it needs is missing`)
  t.match(err.message, 'libgone.so')
})

t.test('an undefined symbol: ABI mismatch', async (t) => {
  // A data symbol is bound at load time (functions bind lazily), like a LibTorch C++ symbol
  // whose mangled name changed with the ABI.
  const file = compileSharedObject('abi.node', 'extern int symbol_of_another_abi;\nint use() { return symbol_of_another_abi; }\n')
  const err = loadError(file)
  t.match(err.message, `${file}: ABI mismatch: built against another LibTorch or C++ ABI`)
  t.match(err.message, 'symbol_of_another_abi')
})

t.test('the built addon finds LibTorch by rpath, and loads from anywhere', async (t) => {
  const built = join(root, 'build', 'Release', 'siamese_torch.node')
  const { found } = require('../scripts/find-libtorch.js').findLibtorch()
  const dynamic = run('readelf', ['-d', built])
  t.equal(dynamic.status, 0, dynamic.stderr)
  t.match(dynamic.stdout, new RegExp(`\\((RUNPATH|RPATH)\\)\\s+Library r(un)?path: \\[[^\\]]*${found.libDir}`),
    `rpath names ${found.libDir}`)
  const file = join(scratch, 'copy.node')
  copyFileSync(built, file)
  t.equal(loadError(file, { LD_LIBRARY_PATH: '' }), null, 'a copy elsewhere loads without LD_LIBRARY_PATH')
})
