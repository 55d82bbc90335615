#!/usr/bin/env node
// The siamese-torch command line. Commands other than `info` arrive with the training issue.
import { parseArgs } from 'node:util'

import { SiameseTorchError } from './errors.js'
import { version, type VersionInfo } from './version.js'

const USAGE = `Usage: siamese-torch <command> [options]

Commands:
  info        versions, where LibTorch was found, CUDA devices, threads

Options:
  --json      print JSON instead of text (info)
  -h, --help  show this help
  --version   print the package version

Example:
  siamese-torch info --json`

function formatInfo (v: VersionInfo): string {
  const gpus = v.gpus.length === 0
    ? 'none'
    : v.gpus.map((g) => `cuda:${g.index}${g.name ? ` ${g.name}` : ''}`).join(', ')
  return [
    `siamese-torch  ${v.siameseTorch}`,
    `LibTorch       ${v.libtorch} (${v.cudaBuild ? 'CUDA' : 'CPU'} build, found via ${v.libtorchSource})`,
    `library        ${v.libtorchLibrary}`,
    `CUDA           ${v.cuda ? `yes, ${v.cudaDevices} device(s): ${gpus}` : 'no'}`,
    `threads        ${v.threads}`,
    `Node.js        ${process.version}`
  ].join('\n')
}

function main (argv: string[]): number {
  let parsed
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
        version: { type: 'boolean', default: false }
      }
    })
  } catch (err) {
    process.stderr.write(`siamese-torch: ${(err as Error).message}\n`)
    return 2
  }
  const { values, positionals } = parsed
  if (values.help) {
    process.stdout.write(`${USAGE}\n`)
    return 0
  }
  const [command, ...rest] = positionals
  if (values.version && command === undefined) {
    process.stdout.write(`${version().siameseTorch}\n`)
    return 0
  }
  if (command === undefined) {
    process.stderr.write(`${USAGE}\n`)
    return 2
  }
  if (command !== 'info') {
    process.stderr.write(`siamese-torch: unknown command '${command}' (try: siamese-torch --help)\n`)
    return 2
  }
  if (rest.length > 0) {
    process.stderr.write(`siamese-torch: info takes no arguments, got '${rest.join(' ')}'\n`)
    return 2
  }
  const info = version()
  process.stdout.write(values.json ? `${JSON.stringify(info)}\n` : `${formatInfo(info)}\n`)
  return 0
}

try {
  process.exitCode = main(process.argv.slice(2))
} catch (err) {
  if (err instanceof SiameseTorchError) {
    process.stderr.write(`siamese-torch: ${err.code}: ${err.message}\n`)
    process.exitCode = 1
  } else {
    throw err
  }
}
