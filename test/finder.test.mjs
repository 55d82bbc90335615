// The LibTorch finder: its order, what it reads from each layout, and its message when nothing
// is found. Fake LibTorch trees are enough: the finder reads files, it does not link.
import t from 'tap'
import { mkdtempSync, mkdirSync, writeFileSync, rmSync, chmodSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { createRequire } from 'node:module'
import { node } from './helpers/run.mjs'

const require = createRequire(import.meta.url)
const { findLibtorch, NotFoundError, NOT_FOUND_MESSAGE } = require('../scripts/find-libtorch.js')

const scratch = mkdtempSync(join(tmpdir(), 'siamese-finder-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))
const empty = join(scratch, 'empty')
mkdirSync(empty)

function put (file, text = '') {
  mkdirSync(dirname(file), { recursive: true })
  writeFileSync(file, text)
}

// A tree laid out like the official libtorch archive (and pip's torch, and Homebrew).
function fakeArchive (dir, { version = '2.5.1', abi = '1', cuda = false } = {}) {
  put(join(dir, 'share/cmake/Torch/TorchConfig.cmake'), `set(TORCH_CXX_FLAGS "-D_GLIBCXX_USE_CXX11_ABI=${abi}")\n`)
  put(join(dir, 'share/cmake/Torch/TorchConfigVersion.cmake'), `set(PACKAGE_VERSION "${version}")\n`)
  put(join(dir, 'include/torch/csrc/api/include/torch/version.h'), `#define TORCH_VERSION \\\n  "${version}"\n`)
  const libs = ['torch', 'torch_cpu', 'c10', ...(cuda ? ['torch_cuda', 'c10_cuda'] : [])]
  for (const l of libs) put(join(dir, `lib/lib${l}.so`))
  return dir
}

// An environment that hides this machine's own LibTorch.
const hidden = { SIAMESE_TORCH_PYTHON: join(empty, 'no-python'), SIAMESE_TORCH_SYSROOT: empty }

t.test('LIBTORCH wins and is described in full', async (t) => {
  const dir = fakeArchive(join(scratch, 'libtorch-cpu'), { version: '2.5.1', abi: '0' })
  const { found } = findLibtorch({ ...hidden, LIBTORCH: dir })
  t.same(found, {
    source: 'LIBTORCH',
    detail: dir,
    cmakeDir: join(dir, 'share/cmake/Torch'),
    version: '2.5.1',
    cuda: false,
    includeDirs: [join(dir, 'include'), join(dir, 'include/torch/csrc/api/include')],
    libDir: join(dir, 'lib'),
    libraries: ['torch', 'torch_cpu', 'c10'],
    cxxFlags: ['-D_GLIBCXX_USE_CXX11_ABI=0'],
    distributed: [],
    description: `LibTorch 2.5.1 (CPU) from LIBTORCH (${dir}), no distributed back-end`
  })
})

t.test('c10d with Gloo\'s headers builds distributed training; NCCL\'s header adds its back-end', async (t) => {
  const dir = fakeArchive(join(scratch, 'libtorch-c10d'), { cuda: true })
  const sysroot = join(scratch, 'sysroot-gloo')
  put(join(dir, 'include/torch/csrc/distributed/c10d/ProcessGroupGloo.hpp'))
  // c10d without Gloo's headers (no libgloo-dev): built without distributed training.
  let { found } = findLibtorch({ ...hidden, SIAMESE_TORCH_SYSROOT: sysroot, LIBTORCH: dir })
  t.same(found.distributed, [])
  t.notOk(found.cxxFlags.includes('-DSIAMESE_TORCH_C10D'))
  put(join(sysroot, 'usr/include/gloo/algorithm.h'))
  ;({ found } = findLibtorch({ ...hidden, SIAMESE_TORCH_SYSROOT: sysroot, LIBTORCH: dir }))
  t.same(found.distributed, ['gloo'])
  t.same(found.cxxFlags, ['-D_GLIBCXX_USE_CXX11_ABI=1', '-DUSE_C10D_GLOO', '-DSIAMESE_TORCH_C10D'])
  t.ok(found.includeDirs.includes(join(sysroot, 'usr/include')), 'Gloo\'s folder is searched')
  t.match(found.description, /distributed: gloo$/)
  // A CUDA LibTorch with c10d's NCCL header and NCCL's own (the nvidia-nccl wheel's place beside a Python torch).
  put(join(dir, 'include/torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp'))
  put(join(dir, 'include/nccl.h'))
  ;({ found } = findLibtorch({ ...hidden, SIAMESE_TORCH_SYSROOT: sysroot, LIBTORCH: dir }))
  t.same(found.distributed, ['gloo', 'nccl'])
  t.same(found.cxxFlags.slice(-2), ['-DUSE_C10D_NCCL', '-DSIAMESE_TORCH_NCCL'])
})

t.test('a CUDA LibTorch links its CUDA libraries', async (t) => {
  const dir = fakeArchive(join(scratch, 'libtorch-cuda'), { cuda: true })
  const { found } = findLibtorch({ ...hidden, LIBTORCH: dir })
  t.equal(found.cuda, true)
  t.same(found.libraries, ['torch', 'torch_cpu', 'c10', 'torch_cuda', 'c10_cuda'])
  const gyp = node(['scripts/find-libtorch.js', '--gyp', 'defines'], { env: { ...hidden, LIBTORCH: dir } })
  t.equal(gyp.stdout.trim(), 'SIAMESE_TORCH_LIBTORCH_SOURCE=LIBTORCH SIAMESE_TORCH_CUDA')
  const ld = node(['scripts/find-libtorch.js', '--gyp', 'ldflags'], { env: { ...hidden, LIBTORCH: dir } })
  t.equal(ld.stdout.trim(), `-Wl,-rpath,${join(dir, 'lib')} -Wl,--no-as-needed`)
})

t.test('a Python with torch comes second', async (t) => {
  const torchDir = fakeArchive(join(scratch, 'site-packages/torch'), { version: '2.11.0' })
  const python = join(scratch, 'fake-python')
  put(python, `#!/bin/sh\necho "${join(torchDir, 'share/cmake')}"\n`)
  chmodSync(python, 0o755)
  const { found, skipped } = findLibtorch({ ...hidden, LIBTORCH: join(empty, 'nope'), SIAMESE_TORCH_PYTHON: python })
  t.equal(found.source, 'python')
  t.equal(found.detail, python)
  t.equal(found.version, '2.11.0')
  t.same(skipped, [{ where: 'LIBTORCH', why: `no TorchConfig.cmake in ${join(empty, 'nope/share/cmake/Torch')}` }],
    'the unusable LIBTORCH is reported, not silently ignored')
})

t.test('a system install (Debian layout) comes last', async (t) => {
  const sysroot = join(scratch, 'sysroot')
  const libDir = join(sysroot, 'usr/lib/x86_64-linux-gnu')
  put(join(libDir, 'cmake/Torch/TorchConfig.cmake'), 'set(TORCH_CXX_FLAGS "-D_GLIBCXX_USE_CXX11_ABI=1")\n')
  put(join(sysroot, 'usr/include/torch/csrc/api/include/torch/version.h'), '#define TORCH_VERSION "1.13.0"\n')
  for (const l of ['torch', 'torch_cpu', 'c10']) put(join(libDir, `lib${l}.so`))
  const { found } = findLibtorch({ ...hidden, SIAMESE_TORCH_SYSROOT: sysroot })
  t.equal(found.source, 'system')
  t.equal(found.version, '1.13.0')
  t.equal(found.libDir, libDir)
  t.same(found.includeDirs, [join(sysroot, 'usr/include'), join(sysroot, 'usr/include/torch/csrc/api/include')])
})

t.test('incomplete trees are skipped with the reason', async (t) => {
  const dir = fakeArchive(join(scratch, 'no-c10'))
  rmSync(join(dir, 'lib/libc10.so'))
  t.throws(() => findLibtorch({ ...hidden, LIBTORCH: dir }), {
    message: new RegExp(`- LIBTORCH: missing libc10.so in ${join(dir, 'lib')}`)
  })
})

t.test('nothing found: one message with the three ways and the apt-get line', async (t) => {
  const env = { ...hidden, LIBTORCH: '/nonexistent' }
  let error
  try {
    findLibtorch(env)
  } catch (err) {
    error = err
  }
  t.type(error, NotFoundError)
  t.same(error.tried.map((x) => x.where), ['LIBTORCH', `Python (SIAMESE_TORCH_PYTHON=${hidden.SIAMESE_TORCH_PYTHON})`, 'system install'])
  t.match(NOT_FOUND_MESSAGE, 'export LIBTORCH=')
  t.match(NOT_FOUND_MESSAGE, 'SIAMESE_TORCH_PYTHON')
  t.match(NOT_FOUND_MESSAGE, 'sudo apt-get install -y libtorch-dev')

  const cli = node(['scripts/find-libtorch.js'], { env })
  t.equal(cli.status, 1)
  t.equal(cli.stdout, '')
  t.ok(cli.stderr.startsWith(NOT_FOUND_MESSAGE), 'the message comes first')
  t.match(cli.stderr, '  - LIBTORCH: no TorchConfig.cmake in /nonexistent/share/cmake/Torch')
  t.match(cli.stderr, '  - Python (SIAMESE_TORCH_PYTHON=')
  t.match(cli.stderr, `  - system install: no TorchConfig.cmake under ${empty}`)
})

t.test('installing with no LibTorch fails with that message, not a CMake error', async (t) => {
  const r = node(['scripts/install.js'], { env: { ...hidden, LIBTORCH: '/nonexistent' } })
  t.equal(r.status, 1)
  t.ok(r.stderr.startsWith(NOT_FOUND_MESSAGE), r.stderr)
  t.notMatch(r.stdout + r.stderr, /CMake/)
})
