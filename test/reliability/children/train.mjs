// Child of the kill and exit tests: trains on tiny data, writing a checkpoint every epoch into
// the out folder it is given, and prints its progress as JSON lines:
//   {"event":"batch","epoch":1,"batch":2} {"event":"epoch","epoch":1}
//   {"event":"file","kind":"checkpoint","path":...} {"event":"done"}
// Usage: node train.mjs <outDir> <epochs> [exitAfterMs]
// With exitAfterMs, it calls process.exit(7) that long after its first batch.
import { train } from 'siamese-torch'
import { expectArguments, tinyDigits } from '../common.mjs'

expectArguments(2, 'node train.mjs <outDir> <epochs> [exitAfterMs]')

const [outDir, epochs, exitAfterMs] = process.argv.slice(2)
const print = (o) => process.stdout.write(`${JSON.stringify(o)}\n`)
const data = await tinyDigits()
let first = true
await train({
  data,
  epochs: Number(epochs),
  saveEvery: 1,
  outDir,
  seed: 5,
  onProgress: (e) => {
    if (e.type === 'batch') {
      print({ event: 'batch', epoch: e.epoch, batch: e.batch })
      if (first && exitAfterMs !== undefined) setTimeout(() => process.exit(7), Number(exitAfterMs))
      first = false
    } else if (e.type === 'epoch') {
      print({ event: 'epoch', epoch: e.epoch })
    } else {
      print({ event: 'file', kind: e.kind, path: e.path })
    }
  }
})
print({ event: 'done' })
