// Colour images of any size: decoding with a fit, EXIF orientation, gray and RGB, raw pixels,
// colour sets in memory and image folders of colour shapes. Every image is drawn here, with sharp.
import t from 'tap'
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import sharp from 'sharp'
import { datasets, SiameseTorchError } from 'siamese-torch'
import { decodeImage, isColourImage, resizeRaw } from '../dist/images.js'
import { toPixels } from '../dist/inputs.js'
import { assertLabelledImages, pixelStats, toNativeData } from '../dist/datasets/arrays.js'
import { classFolderSet } from '../dist/datasets/image-folder.js'

const scratch = mkdtempSync(join(tmpdir(), 'siamese-images-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

const RED = [255, 0, 0]
const GREEN = [0, 255, 0]
const BLUE = [0, 0, 255]
const YELLOW = [255, 255, 0]
const BLACK = [0, 0, 0]
const WHITE = [255, 255, 255]

/** An SVG drawing as an image of `format`, with sharp (librsvg); 3 channels unless `alpha`. */
async function draw (width, height, body, format = 'png', { alpha = false } = {}) {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" shape-rendering="crispEdges">${body}</svg>`
  let image = sharp(Buffer.from(svg))
  if (!alpha) image = image.removeAlpha()
  switch (format) {
    case 'png': return image.png().toBuffer()
    case 'jpeg': return image.jpeg({ quality: 95 }).toBuffer()
    case 'webp': return image.webp({ lossless: true }).toBuffer()
    case 'gif': return image.gif().toBuffer()
    case 'tiff': return image.tiff().toBuffer()
    case 'avif': return image.avif({ lossless: true }).toBuffer()
  }
  throw new Error(format)
}

const rect = (x, y, w, h, [r, g, b], opacity = 1) =>
  `<rect x="${x}" y="${y}" width="${w}" height="${h}" fill="rgb(${r},${g},${b})" fill-opacity="${opacity}"/>`

/** The colour at (x, y) of HWC pixels `width` wide. */
function at (pixels, width, channels, x, y) {
  const i = (y * width + x) * channels
  return [...pixels.subarray(i, i + channels)]
}

/** Each channel within `tolerance` of the expected colour. */
function near (t, actual, expected, tolerance, what) {
  const ok = actual.length === expected.length && actual.every((v, i) => Math.abs(v - expected[i]) <= tolerance)
  t.ok(ok, `${what}: ${JSON.stringify(actual)} is near ${JSON.stringify(expected)}`)
}

// 200 x 100: red left half, blue right half, a yellow band at x 0..40, a green stripe at y 40..60.
const LANDSCAPE = rect(0, 0, 100, 100, RED) + rect(100, 0, 100, 100, BLUE) + rect(0, 0, 40, 100, YELLOW) + rect(0, 40, 200, 20, GREEN)

t.test('decodeImage: the three fits, at 64x64 from 200x100', async (t) => {
  const file = join(scratch, 'landscape.png')
  writeFileSync(file, await draw(200, 100, LANDSCAPE))
  const get = (fit) => decodeImage(file, { width: 64, height: 64, channels: 3, fit })

  const fill = await get('fill')
  t.equal(fill.length, 64 * 64 * 3)
  // Stretched: x scaled by 0.32, y by 0.64. The yellow band ends at x 12.8, the stripe spans y 25.6..38.4.
  near(t, at(fill, 64, 3, 5, 2), YELLOW, 30, 'fill: the yellow band reaches the top, no bar')
  near(t, at(fill, 64, 3, 5, 61), YELLOW, 30, 'fill: and the bottom')
  near(t, at(fill, 64, 3, 25, 20), RED, 30, 'fill: red at x 25 (source x 78)')
  near(t, at(fill, 64, 3, 50, 20), BLUE, 30, 'fill: blue on the right')
  near(t, at(fill, 64, 3, 32, 32), GREEN, 30, 'fill: the stripe in the middle')
  near(t, at(fill, 64, 3, 25, 22), RED, 40, 'fill: y 22 is above the stretched stripe (source y 34)')
  near(t, at(fill, 64, 3, 25, 42), RED, 40, 'fill: y 42 below it (source y 66)')

  const contain = await get('contain')
  t.equal(contain.length, 64 * 64 * 3)
  // Scaled by 0.32 to 64x32, centred: black bars at y 0..16 and 48..64.
  for (const [x, y] of [[5, 5], [32, 5], [60, 12], [5, 52], [32, 58], [60, 63]]) {
    near(t, at(contain, 64, 3, x, y), BLACK, 2, `contain: letterbox bar at (${x}, ${y})`)
  }
  near(t, at(contain, 64, 3, 5, 20), YELLOW, 30, 'contain: the yellow band inside the picture')
  near(t, at(contain, 64, 3, 25, 20), RED, 30, 'contain: red')
  near(t, at(contain, 64, 3, 50, 20), BLUE, 30, 'contain: blue')
  near(t, at(contain, 64, 3, 32, 32), GREEN, 30, 'contain: the stripe (y 28.8..35.2)')
  near(t, at(contain, 64, 3, 50, 44), BLUE, 30, 'contain: the picture ends at y 48')

  const cover = await get('cover')
  t.equal(cover.length, 64 * 64 * 3)
  // Scaled by 0.64 to 128x64, the centre 64 columns kept (source x 50..150): no yellow, no bars.
  near(t, at(cover, 64, 3, 5, 2), RED, 30, 'cover: red at the top left (the yellow band cropped away)')
  near(t, at(cover, 64, 3, 5, 61), RED, 30, 'cover: red at the bottom left, no bar')
  near(t, at(cover, 64, 3, 58, 2), BLUE, 30, 'cover: blue at the top right')
  near(t, at(cover, 64, 3, 20, 32), GREEN, 30, 'cover: the stripe (y 25.6..38.4)')
  near(t, at(cover, 64, 3, 20, 22), RED, 40, 'cover: y 22 above the stripe')

  // The same from a buffer; gray gives one channel a pixel.
  t.same(await decodeImage(await draw(200, 100, LANDSCAPE), { width: 64, height: 64, channels: 3, fit: 'cover' }), cover)
  const gray = await decodeImage(file, { width: 64, height: 64, channels: 1, fit: 'contain' })
  t.equal(gray.length, 64 * 64)
  t.equal(gray[5 * 64 + 32], 0, 'gray contain: the bar is black')
  t.ok(gray[32 * 64 + 32] > 150, `gray: green is light (${gray[32 * 64 + 32]})`)
})

t.test('decodeImage: EXIF orientation 6 turns a landscape JPEG upright (portrait)', async (t) => {
  // 60x40, red left, blue right, stored with orientation 6: shown turned 90 degrees clockwise,
  // 40 wide and 60 tall, red on top and blue below.
  const file = join(scratch, 'rotated.jpg')
  await sharp(await draw(60, 40, rect(0, 0, 30, 40, RED) + rect(30, 0, 30, 40, BLUE), 'png'))
    .jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toFile(file)
  const meta = await sharp(file).metadata()
  t.same([meta.width, meta.height, meta.orientation], [60, 40, 6], 'the file is landscape, with orientation 6')

  const upright = await decodeImage(file, { width: 20, height: 30, channels: 3, fit: 'fill' })
  near(t, at(upright, 20, 3, 2, 5), RED, 40, 'top left red')
  near(t, at(upright, 20, 3, 18, 5), RED, 40, 'top right red (unrotated, it would be blue)')
  near(t, at(upright, 20, 3, 2, 25), BLUE, 40, 'bottom left blue (unrotated, it would be red)')
  near(t, at(upright, 20, 3, 18, 25), BLUE, 40, 'bottom right blue')

  // contain at a landscape size: the upright picture is portrait, so bars left and right.
  const boxed = await decodeImage(file, { width: 60, height: 40, channels: 3, fit: 'contain' })
  near(t, at(boxed, 60, 3, 3, 20), BLACK, 2, 'a bar on the left: the picture is now portrait')
  near(t, at(boxed, 60, 3, 56, 20), BLACK, 2, 'and on the right')
  near(t, at(boxed, 60, 3, 30, 5), RED, 40, 'red on top')
  near(t, at(boxed, 60, 3, 30, 35), BLUE, 40, 'blue below')
})

t.test('decodeImage: gray and colour; errors name the file or the buffer', async (t) => {
  const circle = await draw(40, 40, rect(0, 0, 40, 40, BLUE) + '<circle cx="20" cy="20" r="12" fill="rgb(255,0,0)"/>')
  const rgb = await decodeImage(circle, { width: 40, height: 40, channels: 3, fit: 'fill' })
  t.same(at(rgb, 40, 3, 20, 20), RED, 'the circle is red')
  t.same(at(rgb, 40, 3, 2, 2), BLUE, 'on blue')
  const gray = await decodeImage(circle, { width: 40, height: 40, channels: 1, fit: 'fill' })
  t.equal(gray.length, 1600)
  const redGray = gray[20 * 40 + 20]
  const blueGray = gray[2 * 40 + 2]
  t.ok(redGray > 100 && redGray < 160, `red becomes mid gray (${redGray})`)
  t.ok(blueGray < redGray, `blue darker than red (${blueGray})`)

  // A one-channel image asked for in RGB: the gray repeated in the three channels.
  // (Raw input is written as RGB unless the colour space says b-w.)
  const grayPng = await sharp(Buffer.from([10, 200, 90, 30]), { raw: { width: 2, height: 2, channels: 1 } }).toColourspace('b-w').png().toBuffer()
  t.equal((await sharp(grayPng).metadata()).channels, 1, 'a one-channel PNG')
  t.same([...await decodeImage(grayPng, { width: 2, height: 2, channels: 3, fit: 'fill' })], [10, 10, 10, 200, 200, 200, 90, 90, 90, 30, 30, 30])
  t.same([...await decodeImage(grayPng, { width: 2, height: 2, channels: 1, fit: 'fill' })], [10, 200, 90, 30])

  // Transparency is laid on black, in colour too.
  const seeThrough = await draw(8, 8, rect(0, 0, 8, 8, GREEN, 0.5), 'png', { alpha: true })
  near(t, at(await decodeImage(seeThrough, { width: 8, height: 8, channels: 3, fit: 'fill' }), 8, 3, 4, 4), [0, 128, 0], 2, 'half-transparent green on black')

  const file = join(scratch, 'broken.png')
  writeFileSync(file, 'not an image')
  const err = await decodeImage(file, { width: 8, height: 8, channels: 3, fit: 'fill' }).then(() => null, (e) => e)
  t.type(err, SiameseTorchError)
  t.same([err.code, err.path], ['ERR_BAD_FILE', file])
  t.match(err.message, `${file}: not a readable image (JPEG, PNG, WebP, GIF, TIFF, AVIF)`)
  await t.rejects(decodeImage(Buffer.from('nope'), { width: 8, height: 8, channels: 1, fit: 'fill' }), {
    code: 'ERR_INVALID_ARG', message: /^image buffer: not a readable image \(JPEG, PNG, WebP, GIF, TIFF, AVIF\)/
  })

  t.equal(await isColourImage(writeTo('colour.png', circle)), true, 'RGB: colour')
  t.equal(await isColourImage(writeTo('gray.png', grayPng)), false, 'one channel: gray')
  const grayAlpha = await sharp(Buffer.from([10, 255, 200, 0]), { raw: { width: 2, height: 1, channels: 2 } }).toColourspace('b-w').png().toBuffer()
  t.equal(await isColourImage(writeTo('gray-alpha.png', grayAlpha)), false, 'gray and alpha: gray')
  t.equal(await isColourImage(writeTo('rgba.png', seeThrough)), true, 'RGBA: colour')
  await t.rejects(isColourImage(file), { code: 'ERR_BAD_FILE', path: file })
})

function writeTo (name, data) {
  const file = join(scratch, name)
  writeFileSync(file, data)
  return file
}

/** decodeImage as it was before colour: the pipeline gray models were trained with. */
async function oldDecode (source, width, height) {
  const { data, info } = await sharp(source, { failOn: 'error' })
    .flatten({ background: '#000000' })
    .grayscale()
    .resize(width, height, { fit: 'fill' })
    .raw()
    .toBuffer({ resolveWithObject: true })
  if (info.channels === 1) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  const out = new Uint8Array(width * height)
  for (let i = 0; i < out.length; i++) out[i] = data[i * info.channels]
  return out
}

t.test('gray models get exactly the bytes they got before colour (1 channel, fill)', async (t) => {
  // Colour, transparency, an odd size resized both ways: every step of the old pipeline matters.
  const body = rect(0, 0, 37, 23, BLUE) + rect(5, 3, 20, 12, RED, 0.6) + '<circle cx="25" cy="12" r="9" fill="rgb(40,220,90)" fill-opacity="0.8"/>' +
    rect(30, 0, 7, 23, WHITE, 0.3)
  const sources = {
    'PNG with alpha': await draw(37, 23, body, 'png', { alpha: true }),
    'RGB JPEG': await draw(37, 23, body, 'jpeg'),
    'gray PNG': await sharp(await draw(37, 23, body)).grayscale().png().toBuffer()
  }
  for (const [what, buffer] of Object.entries(sources)) {
    const file = writeTo(`old-${what.replace(/ /g, '-')}.img`, buffer)
    for (const [w, h] of [[28, 28], [24, 40], [37, 23]]) {
      const before = Buffer.from(await oldDecode(file, w, h))
      t.ok(Buffer.from(await decodeImage(file, { width: w, height: h, channels: 1, fit: 'fill' })).equals(before), `${what} at ${w}x${h}: file`)
      t.ok(Buffer.from(await decodeImage(buffer, { width: w, height: h, channels: 1, fit: 'fill' })).equals(before), `${what} at ${w}x${h}: buffer`)
      const viaInputs = await toPixels([file, buffer], { width: w, height: h, channels: 1, fit: 'fill' }, 'images')
      t.ok(Buffer.from(viaInputs).equals(Buffer.concat([before, before])), `${what} at ${w}x${h}: toPixels`)
    }
  }
})

t.test('toPixels: raw pixels of the model\'s shape, RawImage of any shape, and the errors', async (t) => {
  const target = { width: 2, height: 2, channels: 3, fit: 'fill' }
  const exact = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
  t.same([...await toPixels([exact], target, 'a')], [...exact], 'a bare Uint8Array of 2x2x3 is taken as it is')
  t.same([...await toPixels([new Float32Array(12).fill(0.5)], target, 'a')], new Array(12).fill(128), 'floats 0..1')

  // RawImage of exactly the target: copied, no sharp (so no resampling of any kind).
  t.same([...await toPixels([{ data: exact, width: 2, height: 2, channels: 3 }], target, 'a')], [...exact])
  t.same([...await toPixels([{ data: new Float32Array(12).fill(1), width: 2, height: 2, channels: 3 }], target, 'a')], new Array(12).fill(255))
  t.same([...await toPixels([{ data: new Uint8ClampedArray([7, 8, 9, 10]), width: 2, height: 2, channels: 1 }], { ...target, channels: 1 }, 'a')], [7, 8, 9, 10])

  // Another size: resized. Another channel count: converted; alpha laid on black.
  const big = { data: new Uint8Array(8 * 8).fill(100), width: 8, height: 8, channels: 1 }
  t.same([...await toPixels([big], { width: 4, height: 4, channels: 1, fit: 'fill' }, 'a')], new Array(16).fill(100), '8x8 gray to 4x4')
  t.same([...await toPixels([big], target, 'a')], new Array(12).fill(100), '8x8 gray to 2x2 RGB: the gray widened')
  const rgba = new Uint8Array(4 * 4 * 4)
  for (let p = 0; p < 16; p++) rgba.set(p < 8 ? [255, 0, 0, 0] : [0, 255, 0, 255], p * 4) // top half transparent red, bottom opaque green
  const converted = await toPixels([{ data: rgba, width: 4, height: 4, channels: 4 }], { width: 4, height: 4, channels: 3, fit: 'fill' }, 'a')
  t.same(at(converted, 4, 3, 1, 0), BLACK, 'transparent red on black')
  t.same(at(converted, 4, 3, 1, 3), GREEN, 'opaque green stays')
  const wide = { data: new Uint8Array(4 * 2 * 3), width: 4, height: 2, channels: 3 }
  for (let p = 0; p < 8; p++) wide.data.set(RED, p * 3)
  const boxed = await toPixels([wide], { width: 4, height: 4, channels: 3, fit: 'contain' }, 'a')
  t.same(at(boxed, 4, 3, 1, 0), BLACK, 'contain letterboxes raw images too')
  t.same(at(boxed, 4, 3, 1, 1), RED)
  t.same([...await resizeRaw({ data: new Uint8Array([200, 0, 200, 0]), width: 2, height: 1, channels: 2 }, { width: 1, height: 1, channels: 1, fit: 'fill' })], [0], 'resizeRaw: transparent gray is black')
  t.same([...await resizeRaw({ data: new Uint8Array([200, 255, 200, 255]), width: 2, height: 1, channels: 2 }, { width: 1, height: 1, channels: 3, fit: 'fill' })], [200, 200, 200], 'opaque gray widened')

  const cases = [
    [[new Uint8Array(4)], 'Expected 12 values (2x2x3) for a but received Uint8Array of length 4'],
    [[{ data: new Uint8Array(11), width: 2, height: 2, channels: 3 }], 'Expected a Uint8Array or Float32Array of 12 values (2x2x3) for a.data but received Uint8Array of length 11'],
    [[{ data: [1, 2, 3], width: 1, height: 1, channels: 3 }], 'Expected a Uint8Array or Float32Array of 3 values (1x1x3) for a.data but received an array of length 3'],
    [[{ data: new Uint8Array(3), width: 0, height: 1, channels: 3 }], 'Expected an integer from 1 to 4096 for a.width but received number 0'],
    [[{ data: new Uint8Array(3), width: 1, height: 1.5, channels: 3 }], 'Expected an integer from 1 to 4096 for a.height but received number 1.5'],
    [[{ data: new Uint8Array(5), width: 1, height: 1, channels: 5 }], 'Expected an integer from 1 to 4 for a.channels but received number 5'],
    [[{ data: new Float32Array([0, 1.5, 0]), width: 1, height: 1, channels: 3 }], 'Expected a finite pixel value from 0 to 1 for a.data[1] but received number 1.5'],
    [[{ width: 1 }], 'Expected a file path, Buffer (encoded image), Uint8Array, Float32Array or { data, width, height, channels } for a but received an object'],
    [[42], 'Expected a file path, Buffer (encoded image), Uint8Array, Float32Array or { data, width, height, channels } for a but received number 42']
  ]
  for (const [inputs, message] of cases) {
    await t.rejects(toPixels(inputs, target, 'a'), { code: 'ERR_INVALID_ARG', message }, message)
  }
  await t.rejects(toPixels([exact, { data: new Uint8Array(1), width: 2, height: 2, channels: 3 }], target, 'images'),
    { code: 'ERR_INVALID_ARG', message: /for images\[1\]\.data/ }, 'a list names the image')
})

t.test('fromArrays and assertLabelledImages with channels', async (t) => {
  const rgb = new Uint8Array(3 * 32 * 32 * 3).map((_, i) => i % 251)
  const set = datasets.fromArrays({ images: rgb, labels: [0, 1, 1], width: 32, height: 32, channels: 3 })
  t.same([set.count, set.width, set.height, set.channels, set.images.length], [3, 32, 32, 3, 3 * 32 * 32 * 3])
  t.ok(Buffer.from(set.images).equals(Buffer.from(rgb)))
  t.equal(datasets.fromArrays({ images: new Uint8Array(4), labels: [0], width: 2, height: 2 }).channels, 1, 'gray by default')
  const perImage = datasets.fromArrays({ images: [new Float32Array(6).fill(1), new Uint8Array(6).fill(9)], labels: [0, 1], width: 2, height: 1, channels: 3 })
  t.same([...perImage.images], [255, 255, 255, 255, 255, 255, 9, 9, 9, 9, 9, 9])

  const ok = { images: new Uint8Array(12), labels: [0, 1], width: 2, height: 1, channels: 3 }
  const cases = [
    [{ ...ok, images: new Uint8Array(4) }, 'Expected 12 values (2 images of 2x1x3) for images but received Uint8Array of length 4'],
    [{ ...ok, images: new Uint8Array(18) }, 'Expected 3 labels, one per image (images holds 3 images of 2x1x3) for labels but received an array of length 2'],
    [{ ...ok, images: [new Uint8Array(6), new Uint8Array(2)] }, 'Expected a Uint8Array or Float32Array of 6 values (2x1x3) for images[1] but received Uint8Array of length 2'],
    [{ ...ok, channels: 2 }, 'Expected 1 (grey) or 3 (RGB) for channels but received number 2'],
    [{ ...ok, channels: '3' }, 'Expected 1 (grey) or 3 (RGB) for channels but received string "3"']
  ]
  for (const [input, message] of cases) {
    t.throws(() => datasets.fromArrays(input), { code: 'ERR_INVALID_ARG', message }, message)
  }
  t.throws(() => datasets.fromArrays({ images: new Uint8Array(3 * 32 * 32), labels: [0, 1, 1], width: 32, height: 32, channels: 3 }),
    { message: 'Expected 9216 values (3 images of 32x32x3) for images but received Uint8Array of length 3072' })

  // Sets built by hand: channels absent means gray; the length is checked with the channels.
  const { channels: _, ...old } = datasets.fromArrays({ images: new Uint8Array(4), labels: [0, 1], width: 2, height: 1 })
  t.equal(assertLabelledImages(old, 'data.train'), old, 'a set without channels (older code) is still valid')
  t.equal(toNativeData(old).channels, 1)
  t.equal(toNativeData(set).channels, 3)
  t.throws(() => assertLabelledImages({ ...old, channels: 3 }, 'data.train'), {
    code: 'ERR_INVALID_ARG', message: 'Expected a Uint8Array of 12 values (2 images of 2x1x3; use datasets.fromArrays for other forms) for data.train.images but received Uint8Array of length 4'
  })
  t.throws(() => assertLabelledImages({ ...old, channels: 4 }, 'data.train'), {
    code: 'ERR_INVALID_ARG', message: 'Expected 1 (grey) or 3 (RGB) for data.train.channels but received number 4'
  })
})

t.test('pixelStats: per-channel mean and standard deviation of pixel / 255', async (t) => {
  // Red always 0, green always 255 (no spread: std 1), blue 0.2, 0.4, 0.6, 0.8 (mean 0.5, std sqrt(0.05)).
  const set = datasets.fromArrays({ images: new Uint8Array([0, 255, 51, 0, 255, 102, 0, 255, 153, 0, 255, 204]), labels: [0, 1], width: 2, height: 1, channels: 3 })
  const { mean, std } = pixelStats(set)
  t.same(mean.map((m) => +m.toFixed(12)), [0, 1, 0.5])
  t.same(std.slice(0, 2), [1, 1], 'a channel that never varies gets std 1')
  t.ok(Math.abs(std[2] - Math.sqrt(0.05)) < 1e-12, `blue std ${std[2]}`)

  const gray = pixelStats(datasets.fromArrays({ images: new Uint8Array([0, 255, 0, 255]), labels: [0, 0], width: 2, height: 1 }))
  t.same(gray, { mean: [0.5], std: [0.5] })

  // Against a plain two-pass computation on irregular data.
  const images = new Uint8Array(5 * 7 * 3 * 3).map((_, i) => (i * 37 + (i >> 3) * 11) % 256)
  const irregular = pixelStats(datasets.fromArrays({ images, labels: [0, 1, 2], width: 5, height: 7, channels: 3 }))
  for (let c = 0; c < 3; c++) {
    const values = images.filter((_, i) => i % 3 === c).map((v) => v)
    const m = [...values].reduce((a, v) => a + v / 255, 0) / values.length
    const s = Math.sqrt([...values].reduce((a, v) => a + (v / 255 - m) ** 2, 0) / values.length)
    t.ok(Math.abs(irregular.mean[c] - m) < 1e-12 && Math.abs(irregular.std[c] - s) < 1e-12, `channel ${c}: ${irregular.mean[c]} ~ ${m}, ${irregular.std[c]} ~ ${s}`)
  }
  t.throws(() => pixelStats({ images: 'x' }), { code: 'ERR_INVALID_ARG' })
})

// Three classes of coloured shapes, five images each, in every format the folder reads.
const SHAPES = {
  circle: (k) => rect(0, 0, 48, 48, BLUE) + `<circle cx="${20 + k}" cy="24" r="14" fill="rgb(255,0,0)"/>`,
  square: (k) => rect(0, 0, 48, 48, BLACK) + rect(10 + k, 10, 24, 24, GREEN),
  stripe: (k) => rect(0, 0, 48, 48, WHITE) + rect(0, 18 + k, 48, 10, YELLOW)
}
const FORMATS = { circle: ['png', 'jpeg', 'webp', 'gif', 'tiff'], square: ['webp', 'webp', 'webp', 'webp', 'webp'], stripe: ['png', 'avif', 'png', 'jpeg', 'png'] }
const EXTENSIONS = { png: 'png', jpeg: 'JPG', webp: 'webp', gif: 'gif', tiff: 'tif', avif: 'avif' }

async function shapesFolder (root) {
  for (const [name, shape] of Object.entries(SHAPES)) {
    mkdirSync(join(root, name), { recursive: true })
    for (let k = 0; k < 5; k++) {
      const format = FORMATS[name][k]
      writeFileSync(join(root, name, `${k}.${EXTENSIONS[format]}`), await draw(48, 48, shape(k), format))
    }
  }
  writeFileSync(join(root, 'circle', 'notes.txt'), 'not an image, ignored')
}

t.test('imageFolder: coloured shapes, channels detected, every format read, progress reported', async (t) => {
  const root = join(scratch, 'shapes')
  await shapesFolder(root)
  const events = []
  const set = await datasets.imageFolder(root, { width: 32, height: 32, onProgress: (e) => events.push(e) })
  t.same(set.train.classes, ['circle', 'square', 'stripe'])
  t.same([set.train.count, set.test.count], [12, 3], 'image 4 of each class is test')
  t.same([set.train.channels, set.test.channels, set.train.fit], [3, 3, 'fill'], 'colour found in the images')
  t.equal(set.train.images.length, 12 * 32 * 32 * 3)
  t.equal(set.test.images.length, 3 * 32 * 32 * 3)
  t.equal(set.source, root, 'default options: the folder can be read again')

  // Each class looks like itself: train images 0..3 circle (png, JPG, webp, gif), 4..7 square (webp), 8..11 stripe.
  const pixel = (images, i, x, y) => at(images.subarray(i * 3072, (i + 1) * 3072), 32, 3, x, y)
  for (let i = 0; i < 4; i++) {
    near(t, pixel(set.train.images, i, 2, 2), BLUE, 40, `circle ${i}: blue corner`)
    near(t, pixel(set.train.images, i, 15, 16), RED, 40, `circle ${i}: red inside`)
    near(t, pixel(set.train.images, 4 + i, 16, 16), GREEN, 2, `square ${i} (WebP): green inside`)
    near(t, pixel(set.train.images, 4 + i, 1, 30), BLACK, 2, `square ${i} (WebP): black corner`)
    near(t, pixel(set.train.images, 8 + i, 16, 2), WHITE, 40, `stripe ${i}: white top`)
  }
  near(t, pixel(set.train.images, 9, 16, 15), YELLOW, 40, 'the AVIF stripe is yellow')
  near(t, pixel(set.test.images, 0, 15, 16), RED, 40, 'the TIFF circle (test) is red')

  t.ok(events.length >= 2 && events.length <= 101, `${events.length} progress events`)
  t.same(events[0], { done: 0, total: 15 })
  t.same(events.at(-1), { done: 15, total: 15 })
  t.ok(events.every((e, i) => e.total === 15 && (i === 0 || e.done > events[i - 1].done)), 'done only grows')

  const gray = await datasets.imageFolder(root, { width: 16, height: 16, channels: 1, fit: 'cover' })
  t.same([gray.train.channels, gray.train.fit, gray.train.images.length, gray.train.width], [1, 'cover', 12 * 256, 16], 'channels 1 forced, 16 pixels wide')
  t.equal(gray.source, root, 'channels and fit do not stop a resume from reading the folder again (the run records them)')
  t.equal((await datasets.imageFolder(root, { testFraction: 0.5 })).source, undefined, 'another split does')

  const support = await classFolderSet(root, { width: 24, height: 24, channels: 3, fit: 'contain' })
  t.same([support.count, support.channels, support.fit, support.images.length], [15, 3, 'contain', 15 * 24 * 24 * 3])
  t.same([...support.labels], [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2])
})

t.test('imageFolder: a gray folder stays gray', async (t) => {
  const root = join(scratch, 'gray-shapes')
  for (const name of ['a', 'b']) {
    mkdirSync(join(root, name), { recursive: true })
    for (let k = 0; k < 5; k++) {
      const image = sharp(Buffer.alloc(20 * 20, name === 'a' ? 30 + k : 200 - k), { raw: { width: 20, height: 20, channels: 1 } })
      await (k === 2 ? image.toColourspace('b-w').jpeg() : image.toColourspace('b-w').png()).toFile(join(root, name, `${k}.${k === 2 ? 'jpeg' : 'png'}`))
    }
  }
  const set = await datasets.imageFolder(root, { width: 24, height: 24 })
  t.same([set.train.channels, set.test.channels, set.train.images.length], [1, 1, 8 * 576])
  t.equal(set.train.images[0], 30)
  t.equal(pixelStats(set.train).mean.length, 1, 'one channel of statistics')
})

t.test('imageFolder: many images report each whole percent once', async (t) => {
  const root = join(scratch, 'many')
  const tiny = await sharp(Buffer.alloc(4 * 4 * 3, 80), { raw: { width: 4, height: 4, channels: 3 } }).png().toBuffer()
  for (const name of ['x', 'y']) {
    mkdirSync(join(root, name), { recursive: true })
    for (let k = 0; k < 120; k++) writeFileSync(join(root, name, `${String(k).padStart(3, '0')}.png`), tiny)
  }
  const events = []
  const set = await datasets.imageFolder(root, { width: 16, height: 16, onProgress: (e) => events.push(e) })
  t.equal(set.train.count + set.test.count, 240)
  t.equal(events.length, 101, 'done 0, then once for each percent from 1 to 100')
  t.same(events.at(-1), { done: 240, total: 240 })
  t.ok(events.every((e, i) => i === 0 || (e.done > events[i - 1].done && Math.floor(e.done * 100 / 240) === i)), 'one event each percent, in order')
})

t.test('imageFolder: memory refused up front, bad options and files named', async (t) => {
  const root = join(scratch, 'shapes')
  process.env.SIAMESE_TORCH_MEMORY_LIMIT_BYTES = '1000'
  try {
    // 15 images of 32x32x3: 46,080 bytes.
    await t.rejects(datasets.imageFolder(root, { width: 32, height: 32 }), {
      code: 'ERR_NATIVE_OOM', message: `${root}: 15 images of 32x32x3 need 0.0461 MB of memory, more than the 0.001 MB available`
    })
    await t.rejects(classFolderSet(root, { width: 100, height: 100, channels: 1, fit: 'fill' }), {
      code: 'ERR_NATIVE_OOM', message: `${root}: 15 images of 100x100x1 need 0.15 MB of memory, more than the 0.001 MB available`
    })
  } finally {
    delete process.env.SIAMESE_TORCH_MEMORY_LIMIT_BYTES
  }
  t.equal((await datasets.imageFolder(root, { width: 32, height: 32 })).train.count, 12, 'without the limit it loads')

  const bad = [
    [{ width: 10 }, 'Expected an integer from 16 to 4096 for width but received number 10'],
    [{ channels: 2 }, 'Expected 1 (grey) or 3 (RGB) for channels but received number 2'],
    [{ fit: 'stretch' }, "Expected one of 'cover', 'contain', 'fill' for fit but received string \"stretch\""],
    [{ onProgress: 'yes' }, 'Expected a function for onProgress but received string "yes"']
  ]
  for (const [options, message] of bad) {
    await t.rejects(datasets.imageFolder(root, options), { code: 'ERR_INVALID_ARG', message }, message)
  }

  const corrupt = join(scratch, 'corrupt-colour')
  await shapesFolder(corrupt)
  writeFileSync(join(corrupt, 'square', '9.webp'), 'not a webp')
  const err = await datasets.imageFolder(corrupt).then(() => null, (e) => e)
  t.type(err, SiameseTorchError)
  t.same([err.code, err.path], ['ERR_BAD_FILE', join(corrupt, 'square', '9.webp')])
  t.match(err.message, 'not a readable image (JPEG, PNG, WebP, GIF, TIFF, AVIF)')

  const empty = join(scratch, 'empty-colour')
  mkdirSync(join(empty, 'a'), { recursive: true })
  mkdirSync(join(empty, 'b'), { recursive: true })
  writeFileSync(join(empty, 'a', '1.webp'), await draw(4, 4, rect(0, 0, 4, 4, RED), 'webp'))
  await t.rejects(datasets.imageFolder(empty), { code: 'ERR_BAD_FILE', message: `${join(empty, 'b')} holds no images (PNG, JPEG, WebP, GIF, TIFF, AVIF)` })
})

t.test('imageFolder holds its pixels natively: not in JavaScript, and not copied when a run starts', async (t) => {
  const { default: v8 } = await import('node:v8')
  const { runInNewContext } = await import('node:vm')
  const { writeShapes } = await import('./helpers/shapes.mjs')
  const { createModel } = await import('siamese-torch')
  v8.setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc')
  const dir = await writeShapes(join(scratch, 'native-shapes'), { perClass: 40, size: 64, seed: 2 })
  gc()
  const before = process.memoryUsage().arrayBuffers
  const split = await datasets.imageFolder(dir, { width: 64, height: 64, channels: 3 })
  gc()
  const pixelBytes = (split.train.count + split.test.count) * 64 * 64 * 3
  const grown = () => process.memoryUsage().arrayBuffers - before
  t.ok(grown() < pixelBytes / 4, `JavaScript holds ${grown()} bytes of the ${pixelBytes} pixel bytes`)
  t.equal(pixelStats(split.train).mean.length, 3, 'statistics computed where the pixels are')
  t.ok(toNativeData(split.train).pixels !== undefined && toNativeData(split.train).images === undefined, 'the addon gets the store, not bytes')
  const model = await createModel({ tower: 'conv4', width: 64, height: 64, channels: 3, embeddingSize: 8 })
  t.teardown(() => model.dispose())
  await model.train({ data: split, epochs: 1, threads: 1, saveEvery: 0 })
  await model.evaluate(split)
  gc()
  t.ok(grown() < pixelBytes / 4, `training and evaluation copy nothing into JavaScript (${grown()} bytes)`)
  // Reading images copies them out, once: the same bytes the decoder gives.
  const file = join(dir, 'blue-triangle', '000.png') // the first class's first image, the first of train
  const expected = await decodeImage(file, { width: 64, height: 64, channels: 3, fit: 'fill' })
  t.same([...split.train.images.subarray(0, expected.length)], [...expected], 'images reads the first image as decoded')
  t.equal(split.train.images, split.train.images, 'the copy is kept')
  const cloned = structuredClone(split.test)
  t.ok(cloned.images instanceof Uint8Array && cloned.images.length === split.test.count * 64 * 64 * 3, 'a structured clone carries the pixels')
  assertLabelledImages(cloned, 'cloned')
})
