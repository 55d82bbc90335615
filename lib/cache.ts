import { homedir } from 'node:os'
import { join } from 'node:path'

import { invalidArg } from './validate.js'

/**
 * The folder where data sets are kept: `SIAMESE_TORCH_DATA` when set, else the OS cache folder
 * (`$XDG_CACHE_HOME` or `~/.cache` on Linux, `~/Library/Caches` on macOS, `%LOCALAPPDATA%` on
 * Windows) + `siamese-torch/datasets`.
 */
export function dataDir (env: NodeJS.ProcessEnv = process.env): string {
  if (typeof env !== 'object' || env === null) throw invalidArg('env', 'an environment object such as process.env', env)
  const explicit = env['SIAMESE_TORCH_DATA']
  if (explicit) return explicit
  let base: string
  if (process.platform === 'darwin') base = join(homedir(), 'Library', 'Caches')
  else if (process.platform === 'win32') base = env['LOCALAPPDATA'] ?? join(homedir(), 'AppData', 'Local')
  else base = env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache')
  return join(base, 'siamese-torch', 'datasets')
}
