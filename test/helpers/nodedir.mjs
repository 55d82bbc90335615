// Where node-gyp finds Node's headers without downloading them: npm's configured nodedir, else
// the prefix of the running node when it ships include/node (Debian/NodeSource packages do).
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'

export function nodeGypNodedir () {
  const configured = process.env.npm_config_nodedir
  if (configured) return configured
  const prefix = dirname(dirname(process.execPath))
  return existsSync(join(prefix, 'include', 'node', 'common.gypi')) ? prefix : undefined
}
