// A worker_threads job for concurrency.test.mjs: loads the model file it is given and predicts
// the pairs it is given, one call each, all at once; posts the probabilities back.
import { isMainThread, parentPort, workerData } from 'node:worker_threads'
import { loadModel } from 'siamese-torch'

// Run on its own (not as a worker), it has nothing to do.
if (isMainThread) process.exit(0)

const { file, left, right } = workerData
const model = await loadModel(file)
const ps = await Promise.all(left.map((a, i) => model.predict(a, right[i])))
model.dispose()
parentPort.postMessage(ps)
