// Shared by the reliability tests (test/reliability/*.test.mjs): tiny data, a seeded random
// source, memory readings, child processes with time limits, and what an out folder holds.
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { datasets } from 'siamese-torch'
import { strided } from '../helpers/small-data.mjs'

const here = dirname(fileURLToPath(import.meta.url))

/**
 * For the child scripts: exits at once (status 0) unless at least `count` arguments were given,
 * so that a child run on its own (`npx tap test/reliability/` runs every file in the folder)
 * neither hangs nor fails.
 */
export function expectArguments (count, usage) {
  if (process.argv.length - 2 >= count) return
  process.stdout.write(`# ${usage}: a child of a test in test/reliability, not a test itself\n`)
  process.exit(0)
}

/** A child script of test/reliability/children. */
export function childScript (name) {
  return join(here, 'children', name)
}

/** About 100 train and 50 test digits, all classes: an epoch takes well under a second. */
export async function tinyDigits () {
  const { train, test } = await datasets.embedded()
  return { name: 'tiny digits', train: strided(train, 80), test: strided(test, 40) }
}

/** A seeded generator of floats in [0, 1) (mulberry32): the same cases on every run. */
export { random } from '../helpers/random.mjs'

/** A field of /proc/self/status in MiB, e.g. VmRSS (resident now) or VmHWM (resident at most). */
export function statusMiB (field) {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'))
  if (!match) throw new Error(`no ${field} in /proc/self/status`)
  return Number(match[1]) / 1024
}

/** A fresh temporary folder, removed when the test ends. */
export function scratchDir (t, prefix) {
  const dir = mkdtempSync(join(tmpdir(), `siamese-${prefix}-`))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/**
 * Runs a command as a child process and settles when it has exited (or been killed after
 * `timeoutMs`, then `timedOut` is true): { code, signal, stdout, stderr, timedOut, ms }.
 * `onLine(line, child)` sees each line of its standard output as it comes. The child gets no
 * NODE_OPTIONS: tap's hooks stay out of it.
 */
export function runChild (command, args, { timeoutMs = 60_000, env = {}, onLine, cwd } = {}) {
  return new Promise((resolve, reject) => {
    const started = performance.now()
    const childEnv = { ...process.env, ...env }
    delete childEnv.NODE_OPTIONS
    const child = spawn(command, args, { env: childEnv, cwd, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    let pending = ''
    let timedOut = false
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL') }, timeoutMs)
    child.stdout.setEncoding('utf8')
    child.stderr.setEncoding('utf8')
    child.stdout.on('data', (chunk) => {
      stdout += chunk
      pending += chunk
      let newline
      while ((newline = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, newline)
        pending = pending.slice(newline + 1)
        onLine?.(line, child)
      }
    })
    child.stderr.on('data', (chunk) => { stderr += chunk })
    child.on('error', (err) => { clearTimeout(timer); reject(err) })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr, timedOut, ms: performance.now() - started })
    })
  })
}

/** Runs `node <script> ...args` as a child (see runChild). */
export function nodeChild (script, args = [], options = {}) {
  return runChild(process.execPath, [script, ...args], options)
}

/** Runs a bash script as a child; `$NODE` in it is this Node (for `ulimit ...; exec "$NODE" ...`). */
export function bashChild (script, options = {}) {
  return runChild('bash', ['-c', script], { ...options, env: { NODE: process.execPath, ...options.env } })
}

/** The names that training writes and that loadModel must always read. */
export const MODEL_FILE = /^(checkpoint-epoch-(\d+)|model)\.safetensors$/

/** What a training out folder holds: model files (by the names above) and anything else. */
export function outFolder (dir) {
  let names = []
  try {
    names = readdirSync(dir)
  } catch (err) {
    if (err.code !== 'ENOENT') throw err
  }
  const models = names.filter((n) => MODEL_FILE.test(n)).sort()
  const checkpoints = models.filter((n) => n.startsWith('checkpoint-'))
    .sort((a, b) => Number(MODEL_FILE.exec(a)[2]) - Number(MODEL_FILE.exec(b)[2]))
  return { names, models, checkpoints, others: names.filter((n) => !MODEL_FILE.test(n)) }
}

/** The JSON objects among the lines of a child's output (other lines are ignored). */
export function jsonLines (text) {
  const out = []
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue
    try {
      out.push(JSON.parse(line))
    } catch {}
  }
  return out
}

/** A description of how a child ended, for messages. */
export function ending (result) {
  const tail = result.stderr.trim().split('\n').slice(-5).join(' | ')
  return `code ${result.code}, signal ${result.signal}${result.timedOut ? ', timed out' : ''}, ${result.ms.toFixed(0)} ms${tail ? `; stderr: ${tail}` : ''}`
}
