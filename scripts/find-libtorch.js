#!/usr/bin/env node
'use strict'
// The one LibTorch finder, shared by CMakeLists.txt (cmake-js), binding.gyp (node-gyp) and
// scripts/install.js. Order, first hit wins:
//   a) env LIBTORCH: a libtorch folder as unpacked from the official archive;
//   b) a Python with torch (SIAMESE_TORCH_PYTHON, else python3): torch.utils.cmake_prefix_path;
//   c) a system install: Debian/Ubuntu libtorch-dev, Homebrew's pytorch.
// A candidate that is set but unusable is skipped with its reason, and every reason is listed
// when nothing is found. SIAMESE_TORCH_SYSROOT (default /) prefixes the system paths of (c).
//
// Usage:
//   node scripts/find-libtorch.js            human summary
//   node scripts/find-libtorch.js --json     the whole result as JSON (CMake reads this)
//   node scripts/find-libtorch.js --gyp KEY  one list for binding.gyp, space separated:
//                                            libraries | ldflags | cflags | defines
// Exit code 1 with NOT_FOUND_MESSAGE on stderr when no LibTorch is found.

const fs = require('node:fs')
const path = require('node:path')
const { execFileSync } = require('node:child_process')

const NOT_FOUND_MESSAGE = `siamese-torch: LibTorch (PyTorch's C++ library) was not found.
It is needed to build the native addon. Provide it in one of these ways, then reinstall
(npm rebuild siamese-torch):
  1. Set LIBTORCH to a libtorch folder unpacked from the official archive
     (https://pytorch.org/get-started/locally/, "LibTorch", C++ cxx11 ABI):
       export LIBTORCH=/opt/libtorch
  2. Use a Python that has PyTorch (pip install torch); set SIAMESE_TORCH_PYTHON if it is not
     the python3 on PATH. This is the simplest way to a CUDA build:
       export SIAMESE_TORCH_PYTHON=/path/to/venv/bin/python
  3. Install the system package (Debian 12+, Ubuntu 22.04+):
       sudo apt-get install -y libtorch-dev
     or on macOS: brew install pytorch`

class NotFoundError extends Error {
  constructor (tried) {
    const lines = tried.map(({ where, why }) => `  - ${where}: ${why}`)
    super(`${NOT_FOUND_MESSAGE}\nLooked in:\n${lines.join('\n')}`)
    this.name = 'NotFoundError'
    this.tried = tried
  }
}

function readIfExists (file) {
  try {
    return fs.readFileSync(file, 'utf8')
  } catch {
    return null
  }
}

function listLibraries (libDir) {
  try {
    return new Set(fs.readdirSync(libDir))
  } catch {
    return new Set()
  }
}

const SHARED_EXT = process.platform === 'darwin' ? '.dylib' : '.so'

// Everything the two builds need, from the folder that holds TorchConfig.cmake.
// Layouts: <root>/share/cmake/Torch (official archive, pip, Homebrew) and
// <prefix>/lib/<multiarch>/cmake/Torch (Debian/Ubuntu, headers in <prefix>/include).
function describe (cmakeDir, source, detail, sysroot = '/') {
  const config = readIfExists(path.join(cmakeDir, 'TorchConfig.cmake'))
  if (config === null) return { why: `no TorchConfig.cmake in ${cmakeDir}` }

  let includeRoot
  let libDir
  const parts = cmakeDir.split(path.sep)
  if (parts.slice(-3).join('/') === 'share/cmake/Torch') {
    const root = path.resolve(cmakeDir, '..', '..', '..')
    includeRoot = path.join(root, 'include')
    libDir = path.join(root, 'lib')
  } else if (parts.slice(-2).join('/') === 'cmake/Torch') {
    libDir = path.resolve(cmakeDir, '..', '..')
    // <prefix>/lib/<multiarch> -> <prefix>/include
    const prefix = path.basename(path.dirname(libDir)) === 'lib'
      ? path.resolve(libDir, '..', '..')
      : path.resolve(libDir, '..')
    includeRoot = path.join(prefix, 'include')
  } else {
    return { why: `unrecognised layout around ${cmakeDir}` }
  }

  const includeDirs = [includeRoot, path.join(includeRoot, 'torch', 'csrc', 'api', 'include')]
  const versionHeader = readIfExists(path.join(includeDirs[1], 'torch', 'version.h'))
  if (versionHeader === null) return { why: `no LibTorch headers (torch/version.h) under ${includeRoot}` }

  const libs = listLibraries(libDir)
  const names = ['torch', 'torch_cpu', 'c10']
  const missing = names.filter((n) => !libs.has(`lib${n}${SHARED_EXT}`))
  if (missing.length > 0) {
    return { why: `missing ${missing.map((n) => `lib${n}${SHARED_EXT}`).join(', ')} in ${libDir}` }
  }
  const cuda = libs.has(`libtorch_cuda${SHARED_EXT}`) && libs.has(`libc10_cuda${SHARED_EXT}`)

  const versionFile = readIfExists(path.join(cmakeDir, 'TorchConfigVersion.cmake')) || ''
  const headerVersion = /#define TORCH_VERSION\s*\\?\s*"([^"]+)"/.exec(versionHeader)
  const cmakeVersion = /PACKAGE_VERSION "([^"]+)"/.exec(versionFile)
  const version = (headerVersion && headerVersion[1]) || (cmakeVersion && cmakeVersion[1]) || 'unknown'

  // The C++ ABI flag LibTorch was built with; our code must match it or linking fails.
  const abi = /-D_GLIBCXX_USE_CXX11_ABI=([01])/.exec(config)
  const cxxFlags = abi ? [`-D_GLIBCXX_USE_CXX11_ABI=${abi[1]}`] : []

  // Distributed training (native/core/distributed.cc) needs c10d's headers and those of the
  // libraries its back-ends wrap: Gloo's (Debian: libgloo-dev; bundled in some LibTorch trees)
  // and, for NCCL, nccl.h (a CUDA toolkit's, or the nvidia-nccl wheel beside a Python torch).
  const backends = []
  const c10d = path.join(includeRoot, 'torch', 'csrc', 'distributed', 'c10d')
  const headerDir = (name, dirs) => dirs.find((d) => fs.existsSync(path.join(d, name)))
  const systemIncludes = [path.join(sysroot, 'usr', 'include'), path.join(sysroot, 'usr', 'local', 'include')]
  // The compiler's own search path needs no -isystem (adding /usr/include breaks #include_next).
  const addIncludeDir = (d) => {
    if (!['/usr/include', '/usr/local/include'].includes(d) && !includeDirs.includes(d)) includeDirs.push(d)
  }
  const glooDir = fs.existsSync(path.join(c10d, 'ProcessGroupGloo.hpp')) &&
    headerDir(path.join('gloo', 'algorithm.h'), [includeRoot, ...systemIncludes])
  if (glooDir) {
    backends.push('gloo')
    cxxFlags.push('-DUSE_C10D_GLOO', '-DSIAMESE_TORCH_C10D')
    addIncludeDir(glooDir)
    const ncclDir = cuda && fs.existsSync(path.join(c10d, 'ProcessGroupNCCL.hpp')) &&
      headerDir('nccl.h', [includeRoot, path.resolve(includeRoot, '..', '..', 'nvidia', 'nccl', 'include'),
        ...systemIncludes, path.join(sysroot, 'usr', 'local', 'cuda', 'include')])
    if (ncclDir) {
      backends.push('nccl')
      cxxFlags.push('-DUSE_C10D_NCCL', '-DSIAMESE_TORCH_NCCL')
      addIncludeDir(ncclDir)
    }
  }

  return {
    found: {
      source,
      detail,
      cmakeDir,
      version,
      cuda,
      includeDirs,
      libDir,
      libraries: cuda ? [...names, 'torch_cuda', 'c10_cuda'] : names,
      cxxFlags,
      distributed: backends,
      description: `LibTorch ${version}${cuda ? ' (CUDA)' : ' (CPU)'} from ${source} (${detail}), ` +
        (backends.length > 0 ? `distributed: ${backends.join(', ')}` : 'no distributed back-end')
    }
  }
}

function fromLibtorchEnv (env) {
  const dir = env.LIBTORCH
  if (!dir) return { why: 'not set' }
  return describe(path.resolve(dir, 'share', 'cmake', 'Torch'), 'LIBTORCH', path.resolve(dir), env.SIAMESE_TORCH_SYSROOT || '/')
}

function fromPython (env) {
  const python = env.SIAMESE_TORCH_PYTHON || 'python3'
  let out
  try {
    out = execFileSync(python, ['-c', 'import torch.utils; print(torch.utils.cmake_prefix_path)'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60000
    })
  } catch (err) {
    const stderr = err.stderr ? String(err.stderr).trim().split('\n').pop() : ''
    return { why: err.code === 'ENOENT' ? 'not found' : `no torch (${stderr || err.message})` }
  }
  const prefix = out.trim().split('\n').pop()
  return describe(path.join(prefix, 'Torch'), 'python', python, env.SIAMESE_TORCH_SYSROOT || '/')
}

function fromSystem (env) {
  const sysroot = env.SIAMESE_TORCH_SYSROOT || '/'
  const candidates = []
  const usrLib = path.join(sysroot, 'usr', 'lib')
  for (const entry of listLibraries(usrLib)) {
    candidates.push(path.join(usrLib, entry, 'cmake', 'Torch'))
  }
  candidates.push(path.join(usrLib, 'cmake', 'Torch'))
  if (env.HOMEBREW_PREFIX) candidates.push(path.join(sysroot, env.HOMEBREW_PREFIX, 'share', 'cmake', 'Torch'))
  candidates.push(path.join(sysroot, 'opt', 'homebrew', 'share', 'cmake', 'Torch'))
  candidates.push(path.join(sysroot, 'usr', 'local', 'share', 'cmake', 'Torch'))

  const reasons = []
  for (const dir of candidates) {
    if (!fs.existsSync(path.join(dir, 'TorchConfig.cmake'))) continue
    const result = describe(dir, 'system', dir, sysroot)
    if (result.found) return result
    reasons.push(result.why)
  }
  return { why: reasons.length > 0 ? reasons.join('; ') : `no TorchConfig.cmake under ${sysroot} (libtorch-dev or Homebrew pytorch)` }
}

/**
 * Finds LibTorch. Returns { found, skipped } where skipped lists the candidates that were set
 * but unusable; throws NotFoundError when none is usable.
 */
function findLibtorch (env = process.env) {
  const tried = []
  const steps = [
    ['LIBTORCH', fromLibtorchEnv],
    [`Python (${env.SIAMESE_TORCH_PYTHON ? `SIAMESE_TORCH_PYTHON=${env.SIAMESE_TORCH_PYTHON}` : 'python3'})`, fromPython],
    ['system install', fromSystem]
  ]
  for (const [where, step] of steps) {
    const result = step(env)
    if (result.found) {
      return { found: result.found, skipped: tried.filter((t) => t.why !== 'not set') }
    }
    tried.push({ where, why: result.why })
  }
  throw new NotFoundError(tried)
}

function gypList (found, key) {
  switch (key) {
    case 'libraries': return [`-L${found.libDir}`, ...found.libraries.map((l) => `-l${l}`)]
    // --no-as-needed keeps libtorch_cuda loaded even though we call none of its symbols
    // directly: without it a CUDA LibTorch silently runs on the CPU.
    case 'ldflags': return [`-Wl,-rpath,${found.libDir}`, ...(found.cuda ? ['-Wl,--no-as-needed'] : [])]
    // -isystem so that -Wall -Wextra speak only about our own code (/usr/include already is one).
    case 'cflags': return [
      ...found.cxxFlags,
      ...found.includeDirs.filter((d) => d !== '/usr/include').flatMap((d) => ['-isystem', d])
    ]
    case 'defines': return [
      `SIAMESE_TORCH_LIBTORCH_SOURCE=${found.source}`,
      ...(found.cuda ? ['SIAMESE_TORCH_CUDA'] : [])
    ]
    default: throw new Error(`unknown --gyp key ${key}`)
  }
}

function main (argv) {
  let result
  try {
    result = findLibtorch()
  } catch (err) {
    if (err instanceof NotFoundError) {
      process.stderr.write(`${err.message}\n`)
      return 1
    }
    throw err
  }
  const { found, skipped } = result
  if (argv[0] === '--json') {
    process.stdout.write(`${JSON.stringify({ ...found, skipped })}\n`)
  } else if (argv[0] === '--gyp') {
    process.stdout.write(`${gypList(found, argv[1]).join(' ')}\n`)
  } else {
    for (const s of skipped) process.stdout.write(`skipped ${s.where}: ${s.why}\n`)
    process.stdout.write(`siamese-torch: using ${found.description}\n`)
  }
  return 0
}

module.exports = { findLibtorch, NotFoundError, NOT_FOUND_MESSAGE }

if (require.main === module) process.exitCode = main(process.argv.slice(2))
