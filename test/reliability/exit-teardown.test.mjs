// Exit and teardown, each in a child process with a time limit (a hang fails): process.exit()
// during training and during predict, SIGTERM during training (with and without a handler), an
// uncaught exception during training, and worker.terminate() or process.exit() in a worker
// thread during training and during predict. Each ends with the expected code or signal (never
// SIGSEGV or SIGABRT), and leaves no half-written file in the out folder.
//
// Before the fix, process.exit() during training crashed with SIGSEGV in 10 of 12 tries: exit()
// destroyed LibTorch's static state under the training thread. And worker.terminate() during
// predict aborted the whole process (a Node-API exception escaping a completion callback).
import t from 'tap'
import { join } from 'node:path'
import { loadModel } from 'siamese-torch'
import { childScript, ending, jsonLines, nodeChild, outFolder, random, scratchDir } from './common.mjs'

const scratch = scratchDir(t, 'exit')
const rand = random(30)
const LIMIT = 45_000

// Every file in the out folder is a complete model file, and there is nothing else.
async function checkOutFolder (t, dir) {
  const folder = outFolder(dir)
  t.same(folder.others, [], `nothing half written in the out folder (${folder.names.join(', ') || 'empty'})`)
  for (const name of folder.models) {
    const loaded = await loadModel(join(dir, name)).then((m) => { m.dispose(); return 'loads' }, (err) => `${err.code}: ${err.message}`)
    t.equal(loaded, 'loads', `${name} loads`)
  }
  return folder
}

let run = 0
const outDir = () => join(scratch, `out-${run++}`)

for (let i = 0; i < 4; i++) {
  const delay = Math.round(rand() * 1500)
  t.test(`process.exit(7) during training, ${delay} ms after the first batch`, async (t) => {
    const dir = outDir()
    const result = await nodeChild(childScript('train.mjs'), [dir, '50', String(delay)], { timeoutMs: LIMIT })
    t.same([result.code, result.signal], [7, null], ending(result))
    t.notOk(result.timedOut, 'no hang')
    await checkOutFolder(t, dir)
  })
}

for (let i = 0; i < 3; i++) {
  const delay = Math.round(50 + rand() * 1200)
  t.test(`process.exit(7) during predict, embed and evaluate, after ${delay} ms`, async (t) => {
    const result = await nodeChild(childScript('predict-loop.mjs'), [String(delay)], { timeoutMs: LIMIT })
    t.same([result.code, result.signal], [7, null], ending(result))
  })
}

for (let i = 0; i < 3; i++) {
  // Aimed at a checkpoint write: it follows the epoch report.
  const delay = Math.round(rand() * 40)
  t.test(`SIGTERM during training, ${delay} ms after the first epoch report`, async (t) => {
    const dir = outDir()
    let sent = false
    const result = await nodeChild(childScript('train.mjs'), [dir, '50'], {
      timeoutMs: LIMIT,
      onLine: (line, child) => {
        if (!sent && line.includes('"event":"epoch"')) {
          sent = true
          setTimeout(() => child.kill('SIGTERM'), delay)
        }
      }
    })
    t.same([result.code, result.signal], [null, 'SIGTERM'], `ended by the signal, as Node does without a handler (${ending(result)})`)
    await checkOutFolder(t, dir)
  })
}

t.test('SIGTERM during training with a handler that calls process.exit(143)', async (t) => {
  const dir = outDir()
  let sent = false
  const result = await nodeChild(childScript('signal-train.mjs'), [dir, 'sigterm-handler'], {
    timeoutMs: LIMIT,
    onLine: (line, child) => {
      if (!sent && line.includes('"event":"epoch"')) {
        sent = true
        setTimeout(() => child.kill('SIGTERM'), 10)
      }
    }
  })
  t.same([result.code, result.signal], [143, null], ending(result))
  await checkOutFolder(t, dir)
})

t.test('an uncaught exception during training', async (t) => {
  const dir = outDir()
  const result = await nodeChild(childScript('signal-train.mjs'), [dir, 'uncaught'], { timeoutMs: LIMIT })
  t.same([result.code, result.signal], [1, null], ending(result))
  t.match(result.stderr, 'boom: an uncaught exception during training', 'the exception is reported')
  await checkOutFolder(t, dir)
})

const workerCases = [
  ['train', 'terminate'], ['train', 'terminate'], ['predict', 'terminate'], ['predict', 'terminate'],
  ['train', 'exit-in-worker'], ['predict', 'exit-in-worker']
]
for (const [mode, how] of workerCases) {
  const delay = Math.round(rand() * 800)
  const title = how === 'terminate' ? `worker.terminate() during ${mode === 'train' ? 'training' : 'predict'}` : `process.exit(3) in a worker during ${mode === 'train' ? 'training' : 'predict'}`
  t.test(`${title}, after ${delay} ms`, async (t) => {
    const dir = outDir()
    const result = await nodeChild(childScript('worker-host.mjs'), [mode, how, String(delay), dir], { timeoutMs: LIMIT })
    t.same([result.code, result.signal], [0, null], `the process lives on and ends normally (${ending(result)})`)
    const report = jsonLines(result.stdout).find((l) => 'exitCode' in l)
    t.equal(report?.exitCode, how === 'terminate' ? 1 : 3, 'the worker ended with the expected code')
    t.ok(report?.p >= 0 && report?.p <= 1, `the process still predicts afterwards (${report?.p})`)
    t.notOk(jsonLines(result.stdout).find((l) => l.workerError), 'no error event from the worker')
    if (mode === 'train') await checkOutFolder(t, dir)
  })
}
