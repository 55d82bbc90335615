#!/usr/bin/env node
'use strict'
// `npm install` / `npm ci` / `npm rebuild` hook: find LibTorch first, so that a missing LibTorch
// fails with one actionable message instead of a CMake stack, then build the addon with cmake-js.
// Usage: node scripts/install.js [--force]   (--force: clean rebuild)

const path = require('node:path')
const os = require('node:os')
const { spawnSync } = require('node:child_process')
const { findLibtorch, NotFoundError } = require('./find-libtorch.js')

const root = path.resolve(__dirname, '..')

function main (argv) {
  let found
  try {
    const result = findLibtorch()
    found = result.found
    for (const s of result.skipped) console.log(`siamese-torch: skipped ${s.where}: ${s.why}`)
  } catch (err) {
    if (err instanceof NotFoundError) {
      console.error(err.message)
      return 1
    }
    throw err
  }
  console.log(`siamese-torch: building the addon against ${found.description}`)

  const cmakeJs = require.resolve('cmake-js/bin/cmake-js', { paths: [root] })
  const jobs = String(Math.max(1, Math.min(os.availableParallelism(), 8)))
  const args = [
    cmakeJs,
    argv.includes('--force') ? 'rebuild' : 'build',
    '--parallel', jobs,
    `--CDNODE_EXECUTABLE=${process.execPath}`
  ]
  const run = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' })
  if (run.error) throw run.error
  if (run.status !== 0) {
    console.error(`siamese-torch: the native build failed (cmake-js exit ${run.status}); see the output above.`)
    return run.status || 1
  }
  return 0
}

process.exitCode = main(process.argv.slice(2))
