// Small helpers shared by the tests: run a command and collect its output.
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { dirname, join } from 'node:path'

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')

/**
 * Runs a command; returns { status, stdout, stderr }. Never throws on a non-zero exit.
 * The child gets a plain environment: tap hooks every spawn through NODE_OPTIONS, and `env -u`
 * takes that off again so that children (tsc, npm, node-gyp) run as they would for a user.
 */
export function run (command, args, options = {}) {
  const result = spawnSync('env', ['-u', 'NODE_OPTIONS', command, ...args], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    ...options,
    env: { ...process.env, ...options.env }
  })
  if (result.error) throw result.error
  return { status: result.status, stdout: result.stdout, stderr: result.stderr }
}

/** Runs `node ...args`. */
export function node (args, options) {
  return run(process.execPath, args, options)
}
