// examples/colour.mjs: the README's colour image-folder session (test/examples.test.mjs runs it).
import { mkdirSync } from 'node:fs'
import sharp from 'sharp'
import { train, loadModel } from 'siamese-torch'

// A folder of colour images, one sub-folder a class: here drawn on the spot, coloured shapes of
// every size and place. Yours: photos, scans, product shots, in JPEG, PNG, WebP, ...
const classes = { circle: '#e02020', square: '#20c040', triangle: '#3060f0' }
for (const [name, colour] of Object.entries(classes)) {
  mkdirSync(`shapes/${name}`, { recursive: true })
  for (let i = 0; i < 40; i++) {
    const r = 10 + (i * 7) % 14
    const x = r + (i * 37) % (80 - 2 * r)
    const y = r + (i * 53) % (60 - 2 * r)
    const shape = name === 'circle'
      ? `<circle cx="${x}" cy="${y}" r="${r}" fill="${colour}"/>`
      : name === 'square'
        ? `<rect x="${x - r}" y="${y - r}" width="${2 * r}" height="${2 * r}" fill="${colour}"/>`
        : `<polygon points="${x},${y - r} ${x - r},${y + r} ${x + r},${y + r}" fill="${colour}"/>`
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="80" height="60"><rect width="80" height="60" fill="#333"/>${shape}</svg>`
    await sharp(Buffer.from(svg)).jpeg().toFile(`shapes/${name}/${i}.jpg`)
  }
}

// conv4 at 48x48x3: images cropped to a square around their centre, normalised by the folder's own
// per-channel statistics, batches augmented on the trainer's thread (seeded: reproducible).
const { model, history } = await train({
  data: './shapes', tower: 'conv4', width: 48, height: 48, fit: 'cover', epochs: 6, augment: true, outDir: 'shapes-out'
})
console.log(`${model.config.tower}, ${model.config.width}x${model.config.height}x${model.config.channels}, ` +
  `mean ${model.config.mean.map((m) => m.toFixed(3)).join(', ')}`)
console.log(`test accuracy after ${history.length} epochs: ${(100 * history.at(-1).testAccuracy).toFixed(1)}%`)

// Files, encoded bytes or raw pixels; another size is cropped to the model's with the fit it was trained with.
const again = await loadModel('shapes-out/model.safetensors')
const same = await again.predict('shapes/circle/1.jpg', 'shapes/circle/2.jpg')
const other = await again.predict('shapes/circle/1.jpg', 'shapes/square/2.jpg')
console.log(`P(same) for two circles: ${same.toFixed(3)}, for a circle and a square: ${other.toFixed(3)}`)
model.dispose()
again.dispose()
