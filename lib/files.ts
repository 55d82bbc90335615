// Where results go, checked before long work starts, so that hours of training are never lost to
// a typo: a folder that exists or can be made, is a folder, and takes a new file.
import { randomBytes } from 'node:crypto'
import { mkdir, open, rm, stat } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'

import { SiameseTorchError } from './errors.js'

function reason (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

/**
 * Makes `folder` and any missing parents. Not `mkdir(..., { recursive: true })`: Node's loops
 * forever where mkdir fails with ENOENT although the parent exists (under /proc, for one).
 */
async function makeFolder (folder: string): Promise<void> {
  try {
    await mkdir(folder)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EEXIST') return // a folder, or a file that the caller finds in the way
    const parent = dirname(folder)
    if (code !== 'ENOENT' || parent === folder) throw err
    await makeFolder(parent)
    await mkdir(folder) // the parent is there now: a second failure is final
  }
}

/** Makes `dir` when missing and proves that a file can be written in it; resolves with its absolute path. */
export async function prepareOutDir (dir: string, name: string): Promise<string> {
  const folder = resolve(dir)
  const fail = (what: string, cause?: unknown): SiameseTorchError =>
    new SiameseTorchError(`${name}: ${folder} ${what}`, 'ERR_BAD_FILE', { path: folder, ...(cause === undefined ? {} : { cause }) })
  try {
    await makeFolder(folder)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOTDIR') throw fail('cannot be made: a file is in the way', err)
    throw fail(`cannot be made (${reason(err)})`, err)
  }
  if (!(await stat(folder)).isDirectory()) throw fail('is not a folder (a file is in the way)')
  // A real write rather than access(): that says yes on some mounts where writing fails.
  const probe = join(folder, `.siamese-torch-write-check-${process.pid}-${randomBytes(4).toString('hex')}`)
  try {
    await (await open(probe, 'wx')).close()
  } catch (err) {
    throw fail(`cannot be written to (${reason(err)})`, err)
  } finally {
    await rm(probe, { force: true })
  }
  return folder
}

/** Checks that `file` can be created: its folder exists and takes a new file. Resolves with its absolute path. */
export async function prepareOutFile (file: string, name: string): Promise<string> {
  const path = resolve(file)
  const folder = dirname(path)
  try {
    if (!(await stat(folder)).isDirectory()) throw new Error('not a folder')
  } catch (err) {
    throw new SiameseTorchError(`${name}: ${path} cannot be written: ${folder} is not an existing folder`, 'ERR_BAD_FILE', { path, cause: err })
  }
  await prepareOutDir(folder, name)
  return path
}

/**
 * A path inside an Electron app's asar archive, moved to the unpacked copy beside it
 * (`app.asar/x` -> `app.asar.unpacked/x`): native code opens files by path and cannot read
 * inside the archive. Other paths are returned as they are.
 */
export function outsideAsar (path: string): string {
  return path.replace(/\.asar([\\/])/, '.asar.unpacked$1')
}
