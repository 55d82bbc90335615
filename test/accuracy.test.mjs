// The promise of the defaults: two epochs on the embedded digits reach 95% pair accuracy on the
// fixed test pairs. (The slowest test: about two to three minutes on two cores.)
import t from 'tap'
import { train } from 'siamese-torch'

t.test("train({ data: 'embedded', epochs: 2 }) reaches 95% pair accuracy", async (t) => {
  const { model, history } = await train({ data: 'embedded', epochs: 2 })
  const last = history.at(-1)
  t.comment(`epoch 2: accuracy ${(100 * last.testAccuracy).toFixed(2)}%, AUC ${last.auc.toFixed(4)}, ${last.pairsPerSecond.toFixed(0)} pairs/s`)
  t.ok(last.testAccuracy >= 0.95, `accuracy ${last.testAccuracy}`)
  const m = await model.evaluate()
  t.equal(m.accuracy, last.testAccuracy, 'evaluate() measures on the same fixed pairs')
  t.ok(m.oneShotAccuracy > 0.8, `10-way one-shot accuracy ${m.oneShotAccuracy}`)
  model.dispose()
})
