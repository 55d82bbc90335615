// Coloured shapes drawn with sharp at test time: a folder of class folders (dir/<class>/*.png),
// each class a shape in its own colour, at random sizes and places on random dark backgrounds.
// Deterministic: the same seed draws the same images.
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import sharp from 'sharp'
import { random } from './random.mjs'

export const SHAPE_CLASSES = ['red-circle', 'green-square', 'blue-triangle', 'yellow-diamond']

const COLOURS = { 'red-circle': '#e02020', 'green-square': '#20c040', 'blue-triangle': '#3060f0', 'yellow-diamond': '#f0d020' }

function shapeSvg (cls, size, next) {
  const r = size * (0.18 + 0.14 * next())
  const cx = r + (size - 2 * r) * next()
  const cy = r + (size - 2 * r) * next()
  const grey = Math.floor(20 + 60 * next())
  const background = `rgb(${grey},${grey},${Math.floor(grey * (0.6 + 0.8 * next()))})`
  const fill = COLOURS[cls]
  let shape
  if (cls === 'red-circle') shape = `<circle cx="${cx}" cy="${cy}" r="${r}" fill="${fill}"/>`
  else if (cls === 'green-square') shape = `<rect x="${cx - r}" y="${cy - r}" width="${2 * r}" height="${2 * r}" fill="${fill}"/>`
  else if (cls === 'blue-triangle') shape = `<polygon points="${cx},${cy - r} ${cx - r},${cy + r} ${cx + r},${cy + r}" fill="${fill}"/>`
  else shape = `<polygon points="${cx},${cy - r} ${cx + r},${cy} ${cx},${cy + r} ${cx - r},${cy}" fill="${fill}"/>`
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}"><rect width="100%" height="100%" fill="${background}"/>${shape}</svg>`
}

/**
 * Writes `perClass` images of each shape class into `dir` (PNG, `size` pixels square) and returns
 * `dir`. Some are JPEG, to mix formats.
 */
export async function writeShapes (dir, { perClass = 20, size = 40, seed = 1, classes = SHAPE_CLASSES } = {}) {
  const next = random(seed)
  for (const cls of classes) {
    mkdirSync(join(dir, cls), { recursive: true })
    for (let i = 0; i < perClass; i++) {
      const image = sharp(Buffer.from(shapeSvg(cls, size, next)))
      const jpeg = i % 5 === 4
      await (jpeg ? image.jpeg({ quality: 95 }) : image.png()).toFile(join(dir, cls, `${String(i).padStart(3, '0')}.${jpeg ? 'jpg' : 'png'}`))
    }
  }
  return dir
}

/** One shape image as encoded PNG bytes. */
export async function shapePng (cls, size = 40, seed = 99) {
  return sharp(Buffer.from(shapeSvg(cls, size, random(seed)))).png().toBuffer()
}
