// A model written by siamese-torch loads into the reference PyTorch module (Debian's
// python3-torch) and gives the same probabilities as predict, within 1e-4.
import t from 'tap'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { train } from 'siamese-torch'
import { run, root } from './helpers/run.mjs'
import { smallDigits, image } from './helpers/small-data.mjs'

const python = '/usr/bin/python3'
const hasTorch = existsSync(python) && run(python, ['-c', 'import torch']).status === 0

t.test('PyTorch loads our model and agrees with predict', { skip: !hasTorch && 'needs Debian python3-torch (apt-get install python3-torch)' }, async (t) => {
  const scratch = mkdtempSync(join(tmpdir(), 'siamese-interop-'))
  t.teardown(() => rmSync(scratch, { recursive: true, force: true }))
  const data = await smallDigits()
  const { model } = await train({ data, epochs: 1, seed: 11 })
  const file = join(scratch, 'model.safetensors')
  await model.save(file)
  const pairs = Array.from({ length: 24 }, (_, i) => [i, (i * 37 + 5) % data.test.count])
  const left = pairs.map(([i]) => image(data.test, i))
  const right = pairs.map(([, j]) => image(data.test, j))
  writeFileSync(join(scratch, 'pairs.json'), JSON.stringify({ left: left.map((a) => [...a]), right: right.map((a) => [...a]) }))
  const ours = await model.predict(left, right)
  const py = run(python, [join(root, 'test', 'interop', 'load_in_pytorch.py'), file, join(scratch, 'pairs.json')])
  t.equal(py.status, 0, py.stderr)
  const theirs = JSON.parse(py.stdout)
  t.comment(`PyTorch ${theirs.torch}`)
  const worst = Math.max(...ours.map((p, i) => Math.abs(p - theirs.pSame[i])))
  t.ok(worst < 1e-4, `largest difference ${worst.toExponential(2)} < 1e-4`)
  t.ok(ours.some((p) => p > 0.5) && ours.some((p) => p < 0.5), 'the pairs include both verdicts')
  model.dispose()
})
