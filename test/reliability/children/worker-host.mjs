// Child of exit-teardown.test.mjs: runs children/worker-job.mjs in a worker thread, ends it while
// it works (worker.terminate(), or process.exit() inside the worker), then checks that this
// process can still use siamese-torch, and prints {"exitCode": ..., "p": ...}.
// Usage: node worker-host.mjs <train|predict> <terminate|exit-in-worker> <delayMs> <outDir>
import { Worker } from 'node:worker_threads'
import { createModel } from 'siamese-torch'
import { expectArguments } from '../common.mjs'

expectArguments(4, 'node worker-host.mjs <train|predict> <terminate|exit-in-worker> <delayMs> <outDir>')

const [mode, how, delay, outDir] = process.argv.slice(2)
const worker = new Worker(new URL('./worker-job.mjs', import.meta.url), {
  workerData: { mode, outDir, ...(how === 'exit-in-worker' ? { exitAfterMs: Number(delay) } : {}) }
})
const exited = new Promise((resolve) => worker.once('exit', resolve))
worker.on('error', (err) => { process.stdout.write(`${JSON.stringify({ workerError: String(err) })}\n`) })
await new Promise((resolve) => worker.once('message', resolve))
let exitCode
if (how === 'terminate') {
  await new Promise((resolve) => setTimeout(resolve, Number(delay)))
  exitCode = await worker.terminate()
} else {
  exitCode = await exited
}
const model = await createModel({ seed: 3 })
const p = await model.predict(new Uint8Array(784), new Uint8Array(784).fill(200))
model.dispose()
process.stdout.write(`${JSON.stringify({ exitCode, p })}\n`)
