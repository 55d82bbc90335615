// Atomic writes under kill -9: a child process trains (tiny data, a checkpoint every epoch) and
// is killed with SIGKILL at seeded random moments, most of them aimed at checkpoint writes (right
// after it reports an epoch, which is when the checkpoint is written). Afterwards every file in
// the out folder named checkpoint-epoch-N.safetensors or model.safetensors loads, nothing else is
// there (the files are written without a name and named once complete, so a kill leaves no
// temporary file either), and the latest checkpoint resumes training.
import t from 'tap'
import { join } from 'node:path'
import { loadModel, train } from 'siamese-torch'
import { childScript, ending, nodeChild, outFolder, random, scratchDir, tinyDigits } from './common.mjs'

const KILLS = 20
const EPOCHS = 3
const scratch = scratchDir(t, 'kill')
const data = await tinyDigits()
const rand = random(20)

const tally = { inWrite: 0, resumed: 0, files: 0, noCheckpoint: 0 }
// How long a checkpoint write takes here, from the epoch report to the file report (measured as
// the runs go): kills aimed at writes are spread over that window. 40 ms until measured.
const writeTimes = []
const writeWindow = () => (writeTimes.length === 0 ? 40 : Math.max(5, writeTimes.sort((a, b) => a - b)[writeTimes.length >> 1]))

for (let i = 0; i < KILLS; i++) {
  // 0: after the k-th epoch report, within the checkpoint write that follows (~35 ms here);
  // 1: just after the k-th file report (the last checkpoint is followed by model.safetensors);
  // 2: at a random moment of the run.
  const strategy = i % 3
  const k = 1 + Math.floor(rand() * EPOCHS)
  const r = rand()
  const what = ['after epoch report', 'after file report', 'at a random time'][strategy]
  t.test(`kill ${i + 1}: SIGKILL ${what}${strategy === 2 ? '' : ` #${k}`}`, async (t) => {
    const delay = strategy === 0 ? r * writeWindow() : strategy === 1 ? r * 20 : 500 + r * 3500
    t.comment(`${delay.toFixed(1)} ms after it`)
    const outDir = join(scratch, `run-${i}`)
    const seen = { epoch: 0, file: 0, checkpointWritten: 0 }
    let killed = false
    let timer
    const kill = (child) => { killed = true; child.kill('SIGKILL') }
    const result = await nodeChild(childScript('train.mjs'), [outDir, String(EPOCHS)], {
      timeoutMs: 60_000,
      onLine: (line, child) => {
        if (killed || !line.startsWith('{')) return
        const e = JSON.parse(line)
        if (strategy === 2 && e.event === 'batch' && timer === undefined) timer = setTimeout(() => kill(child), delay)
        if (e.event === 'epoch') {
          seen.epoch = e.epoch
          seen.epochAt = performance.now()
        }
        if (e.event === 'file') {
          seen.file++
          if (e.kind === 'checkpoint') {
            seen.checkpointWritten = seen.epoch
            writeTimes.push(performance.now() - seen.epochAt)
          }
        }
        if ((strategy === 0 && e.event === 'epoch' && e.epoch === k) || (strategy === 1 && e.event === 'file' && seen.file === k)) {
          setTimeout(() => kill(child), delay)
        }
      }
    })
    clearTimeout(timer)
    // A kill sent as the run was ending may come too late: the child has exited, with code 0.
    if (killed && result.signal === 'SIGKILL') {
      t.pass(`killed (${ending(result)})`)
    } else {
      t.equal(result.code, 0, `it finished before the kill (${ending(result)})`)
    }
    if (seen.epoch > seen.checkpointWritten) tally.inWrite++

    const folder = outFolder(outDir)
    t.same(folder.others, [], `nothing but model files in the out folder (${folder.names.join(', ') || 'empty'})`)
    for (const name of folder.models) {
      const model = await loadModel(join(outDir, name)).then((m) => m, (err) => err)
      t.notOk(model instanceof Error, `${name} loads${model instanceof Error ? `: ${model.code} ${model.message}` : ''}`)
      if (!(model instanceof Error)) model.dispose()
      tally.files++
    }
    const latest = folder.checkpoints.at(-1)
    t.ok(seen.checkpointWritten === 0 || latest !== undefined, 'a checkpoint reported written is there')
    if (latest === undefined) {
      tally.noCheckpoint++
      return
    }
    // The latest checkpoint resumes: its weights and optimiser state load, and it trains on.
    const epoch = Number(/(\d+)/.exec(latest)[1])
    const resumed = await train({ resume: join(outDir, latest), data, epochs: epoch + 1 }).then((r) => r, (err) => err)
    t.notOk(resumed instanceof Error, `${latest} resumes and trains epoch ${epoch + 1}${resumed instanceof Error ? `: ${resumed.code} ${resumed.message}` : ''}`)
    if (!(resumed instanceof Error)) {
      t.same(resumed.history.map((h) => h.epoch), [epoch + 1])
      resumed.model.dispose()
      tally.resumed++
    }
  })
}

t.test('the kills hit checkpoint writes', async (t) => {
  t.comment(`checkpoint writes took ${writeWindow().toFixed(0)} ms (median, from epoch report to file report)`)
  t.comment(`${KILLS} kills: ${tally.inWrite} between an epoch report and its checkpoint's file report (inside the write), ` +
    `${tally.files} model files loaded, ${tally.resumed} latest checkpoints resumed, ` +
    `${tally.noCheckpoint} runs killed before their first checkpoint`)
  t.ok(tally.inWrite >= 2, `at least 2 of ${KILLS} kills landed inside a checkpoint write (${tally.inWrite})`)
})
