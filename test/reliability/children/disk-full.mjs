// Child of exhaustion.test.mjs, started under a file size limit (ulimit -f) that a model file
// (~8.4 MiB) exceeds: saving over an existing good file, and training with an out folder, must
// fail with a coded error and leave the good file as it was. Prints JSON lines.
// Usage: node disk-full.mjs <target file> <out folder> <small file>
import { createModel } from 'siamese-torch'
import { expectArguments, tinyDigits } from '../common.mjs'
import { image } from '../../helpers/small-data.mjs'

expectArguments(3, 'node disk-full.mjs <target file> <out folder> <small file>')

const [target, outDir, smallFile] = process.argv.slice(2)
// Node resets SIGXFSZ to its default action (end the process) at start-up, whatever the shell
// set; with a handler, a write past the limit fails with EFBIG instead, as on a full disk.
process.on('SIGXFSZ', () => {})
const print = (o) => process.stdout.write(`${JSON.stringify(o)}\n`)
const data = await tinyDigits()
const a = image(data.test, 0)
const b = image(data.test, 1)
const model = await createModel({ seed: 2 })
const before = await model.predict(a, b)
const coded = (err) => ({ code: err?.code ?? `no code (${err})`, message: String(err?.message), path: err?.path })

print({ case: 'save over a good file', ...await model.save(target).then(() => ({ code: 'saved' }), coded) })
print({ case: 'predict afterwards', same: await model.predict(a, b) === before })
print({ case: 'train with checkpoints', ...await model.train({ data, epochs: 1, saveEvery: 1, outDir }).then(() => ({ code: 'trained' }), coded) })
print({ case: 'predict after training', p: await model.predict(a, b) })
// A file under the limit still saves: the process is not left broken.
const small = await createModel({ seed: 3, embeddingSize: 16 })
print({ case: 'a small file still saves', ...await small.save(smallFile).then(() => ({ code: 'saved' }), coded) })
print({ done: true })
