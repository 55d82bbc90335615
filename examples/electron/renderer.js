'use strict'
// The page: no Node here, only window.siamese from preload.js.

const $ = (id) => document.getElementById(id)
const TEST_DIGITS = 1996 // the embedded test set

window.siamese.onProgress((event) => {
  if (event.type === 'batch') {
    $('progress').textContent = `epoch ${event.epoch}/${event.epochs}: batch ${event.batch}/${event.batches}, ` +
      `loss ${event.loss.toFixed(3)}, ${Math.round(event.pairsPerSecond)} pairs/s`
  } else if (event.type === 'epoch') {
    $('progress').textContent = `epoch ${event.epoch}: test accuracy ${(event.testAccuracy * 100).toFixed(1)}%`
  }
})

$('train').addEventListener('click', async () => {
  $('train').disabled = true
  try {
    const { history } = await window.siamese.train({ epochs: 1 })
    const last = history.at(-1)
    $('progress').textContent = `trained: ${(last.testAccuracy * 100).toFixed(1)}% of the test pairs right ` +
      `(${last.seconds.toFixed(1)} s)`
  } catch (err) {
    $('progress').textContent = err.message
  } finally {
    $('train').disabled = false
  }
})

function draw (canvas, pixels) {
  const context = canvas.getContext('2d')
  const image = context.createImageData(28, 28)
  pixels.forEach((v, i) => image.data.set([v, v, v, 255], i * 4))
  context.putImageData(image, 0, 0)
}

$('predict').addEventListener('click', async () => {
  const pick = [0, 1].map(() => Math.floor(Math.random() * TEST_DIGITS))
  try {
    const { pSame, labels, images } = await window.siamese.predict({ pick })
    draw($('a'), images[0])
    draw($('b'), images[1])
    $('answer').textContent = `a ${labels[0]} and a ${labels[1]}: P(same) = ${pSame.toFixed(3)}`
  } catch (err) {
    $('answer').textContent = err.message
  }
})
