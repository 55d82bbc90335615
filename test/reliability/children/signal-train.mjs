// Child of exit-teardown.test.mjs: trains like children/train.mjs, with a process-level failure
// to come. Usage: node signal-train.mjs <outDir> <mode>
//   sigterm-handler: SIGTERM calls process.exit(143) (the usual way to stop on SIGTERM)
//   uncaught: throws an uncaught exception after the first batch
import { train } from 'siamese-torch'
import { expectArguments, tinyDigits } from '../common.mjs'

expectArguments(2, 'node signal-train.mjs <outDir> <sigterm-handler|uncaught>')

const [outDir, mode] = process.argv.slice(2)
if (mode === 'sigterm-handler') process.on('SIGTERM', () => process.exit(143))
const data = await tinyDigits()
let first = true
await train({
  data,
  epochs: 50,
  saveEvery: 1,
  outDir,
  seed: 5,
  onProgress: (e) => {
    if (e.type === 'batch' && first) {
      first = false
      process.stdout.write('{"event":"batch"}\n')
      if (mode === 'uncaught') setTimeout(() => { throw new Error('boom: an uncaught exception during training') }, 300)
    }
    if (e.type === 'epoch') process.stdout.write(`{"event":"epoch","epoch":${e.epoch}}\n`)
  }
})
