// Pictures of a training run: training curves, a sheet of test pairs, an embedding map. Charts
// are Vega specifications rendered to SVG by vega (no browser); PNGs are rasterised from the
// SVG by sharp (librsvg). PCA comes from ml-pca.
import { writeFile } from 'node:fs/promises'

import type SharpType from 'sharp'

import { binding, type NativeAugment } from './binding.js'
import { imageBytes } from './datasets/native-pixels.js'
import type { LabelledImages } from './datasets/types.js'
import { testPairs } from './datasets/sampling.js'
import type { Metrics, SiameseModel, Verification } from './model.js'
import type { EpochMetrics } from './progress.js'

type VegaSpec = Record<string, unknown>

const FONT = 'DejaVu Sans, Verdana, sans-serif'
const TRAIN_COLOUR = '#1f77b4'
const TEST_COLOUR = '#ff7f0e'

function sharp (): typeof SharpType {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('sharp') as typeof SharpType
}

// The little of vega's API used here (its own typings need the DOM library).
interface Vega {
  parse(spec: VegaSpec): unknown
  View: new (runtime: unknown, options: { renderer: 'none' }) => { toSVG(): Promise<string> }
}

async function renderSvg (spec: VegaSpec): Promise<string> {
  // vega is an ES module only: load it on demand (a variable name keeps its typings out).
  const name = 'vega'
  const vega = (await import(name)) as Vega
  return new vega.View(vega.parse(spec), { renderer: 'none' }).toSVG()
}

/** Writes `name.svg` and `name.png` (rasterised at twice the size) and returns both paths. */
export async function writeSvgAndPng (svg: string, base: string): Promise<string[]> {
  await writeFile(`${base}.svg`, svg)
  await sharp()(Buffer.from(svg), { density: 144 }).flatten({ background: '#ffffff' }).png().toFile(`${base}.png`)
  return [`${base}.svg`, `${base}.png`]
}

/** An SVG rasterised to PNG bytes, on white; `scale` 1 is the SVG's own size in pixels. */
export async function svgToPng (svg: string, scale = 1): Promise<Buffer> {
  return sharp()(Buffer.from(svg), { density: 72 * scale }).flatten({ background: '#ffffff' }).png().toBuffer()
}

function linePanel (metric: 'loss' | 'accuracy', x: number, width: number): VegaSpec {
  const isAccuracy = metric === 'accuracy'
  return {
    type: 'group',
    title: { text: isAccuracy ? 'Pair accuracy' : 'Loss', font: FONT, fontSize: 14 },
    encode: { enter: { x: { value: x }, width: { value: width }, height: { signal: 'height' } } },
    data: [{ name: metric, source: 'rows', transform: [{ type: 'filter', expr: `datum.metric === '${metric}'` }] }],
    scales: [
      { name: 'x', type: 'linear', domain: { data: metric, field: 'epoch' }, range: [0, width], zero: false, nice: false, padding: 8 },
      { name: 'y', type: 'linear', domain: { data: metric, field: 'value' }, range: 'height', zero: !isAccuracy, nice: true }
    ],
    axes: [
      { orient: 'bottom', scale: 'x', title: 'epoch', tickMinStep: 1, format: 'd', labelFont: FONT, titleFont: FONT },
      { orient: 'left', scale: 'y', grid: true, format: isAccuracy ? '.1%' : '.2f', labelFont: FONT, titleFont: FONT }
    ],
    marks: [{
      type: 'group',
      from: { facet: { name: `${metric}-series`, data: metric, groupby: 'split' } },
      marks: [
        {
          type: 'line',
          from: { data: `${metric}-series` },
          encode: { enter: { x: { scale: 'x', field: 'epoch' }, y: { scale: 'y', field: 'value' }, stroke: { scale: 'colour', field: 'split' }, strokeWidth: { value: 2 } } }
        },
        {
          type: 'symbol',
          from: { data: `${metric}-series` },
          encode: { enter: { x: { scale: 'x', field: 'epoch' }, y: { scale: 'y', field: 'value' }, fill: { scale: 'colour', field: 'split' }, size: { value: 36 } } }
        }
      ]
    }]
  }
}

/** Loss and pair accuracy per epoch, train and test, side by side. */
export async function curvesSvg (history: readonly EpochMetrics[], title: string): Promise<string> {
  const rows = history.flatMap((h) => [
    { epoch: h.epoch, metric: 'loss', split: 'train', value: h.trainLoss },
    { epoch: h.epoch, metric: 'loss', split: 'test', value: h.testLoss },
    { epoch: h.epoch, metric: 'accuracy', split: 'train', value: h.trainAccuracy },
    { epoch: h.epoch, metric: 'accuracy', split: 'test', value: h.testAccuracy }
  ])
  return renderSvg({
    $schema: 'https://vega.github.io/schema/vega/v5.json',
    width: 760,
    height: 280,
    padding: 16,
    background: 'white',
    title: { text: title, font: FONT, fontSize: 16, anchor: 'start' },
    data: [{ name: 'rows', values: rows }],
    scales: [{ name: 'colour', type: 'ordinal', domain: ['train', 'test'], range: [TRAIN_COLOUR, TEST_COLOUR] }],
    // Placed by hand, right of both panels, so that it never covers a line.
    legends: [{ fill: 'colour', orient: 'none', legendX: 780, legendY: 0, labelFont: FONT, titleFont: FONT, title: 'split' }],
    marks: [linePanel('loss', 0, 340), linePanel('accuracy', 420, 340)]
  })
}

function rocPanel (scale: 'linear' | 'log', x: number, width: number, smallestFar: number): VegaSpec {
  const log = scale === 'log'
  const source = log ? 'positive' : 'rows'
  return {
    type: 'group',
    title: { text: log ? 'Low false-accept rates (log scale)' : 'ROC', font: FONT, fontSize: 14 },
    encode: { enter: { x: { value: x }, width: { value: width }, height: { signal: 'height' } } },
    scales: [
      log
        ? { name: 'x', type: 'log', domain: [smallestFar, 1], range: [0, width], nice: false }
        : { name: 'x', type: 'linear', domain: [0, 1], range: [0, width] },
      { name: 'y', type: 'linear', domain: [0, 1], range: 'height' }
    ],
    axes: [
      { orient: 'bottom', scale: 'x', title: 'false-accept rate', grid: true, format: log ? '.0e' : '.1f', labelFont: FONT, titleFont: FONT },
      { orient: 'left', scale: 'y', title: 'true-accept rate', grid: true, format: '.1f', labelFont: FONT, titleFont: FONT }
    ],
    marks: [
      ...(log
        ? []
        : [{
            type: 'rule',
            encode: { enter: { x: { value: 0 }, y: { signal: 'height' }, x2: { value: width }, y2: { value: 0 }, stroke: { value: '#bbbbbb' }, strokeDash: { value: [4, 4] } } }
          }]),
      {
        type: 'group',
        from: { facet: { name: `${scale}-series`, data: source, groupby: 'curve' } },
        marks: [{
          type: 'line',
          from: { data: `${scale}-series` },
          encode: { enter: { x: { scale: 'x', field: 'far' }, y: { scale: 'y', field: 'tar' }, stroke: { scale: 'colour', field: 'curve' }, strokeWidth: { value: 2 } } }
        }]
      },
      {
        type: 'symbol',
        from: { data: log ? 'eerPositive' : 'eer' },
        encode: { enter: { x: { scale: 'x', field: 'far' }, y: { scale: 'y', field: 'tar' }, fill: { scale: 'colour', field: 'curve' }, size: { value: 64 }, shape: { value: 'diamond' } } }
      }
    ]
  }
}

/**
 * The ROC curves of an evaluation, on the fixed test pairs and on all pairs: linear axes, and the
 * low false-accept rates on a log scale; each curve's equal-error point is marked.
 */
export async function rocSvg (m: Metrics, title: string): Promise<string> {
  const curves: Array<[string, Verification]> = [['fixed test pairs', m.verification.pairs]]
  if (m.verification.allPairs !== null) curves.push(['all pairs', m.verification.allPairs])
  const label = (name: string, v: Verification): string => `${name}: AUC ${v.auc.toFixed(3)}, EER ${(100 * v.eer).toFixed(1)}%`
  const rows = curves.flatMap(([name, v]) => v.roc.far.map((far, i) => ({ curve: label(name, v), far, tar: v.roc.tar[i] })))
  const eer = curves.map(([name, v]) => ({ curve: label(name, v), far: v.eer, tar: 1 - v.eer }))
  // The log axis starts at the smallest false-accept rate a curve can show: 1 / its different pairs.
  const smallestFar = Math.min(...curves.map(([, v]) => 1 / Math.max(1, v.negatives)))
  const colours = [TEST_COLOUR, TRAIN_COLOUR]
  return renderSvg({
    $schema: 'https://vega.github.io/schema/vega/v5.json',
    width: 760,
    height: 300,
    padding: 16,
    background: 'white',
    title: { text: title, font: FONT, fontSize: 16, anchor: 'start' },
    data: [
      { name: 'rows', values: rows },
      { name: 'positive', source: 'rows', transform: [{ type: 'filter', expr: 'datum.far > 0' }] },
      { name: 'eer', values: eer },
      { name: 'eerPositive', source: 'eer', transform: [{ type: 'filter', expr: 'datum.far > 0' }] }
    ],
    scales: [{ name: 'colour', type: 'ordinal', domain: curves.map(([name, v]) => label(name, v)), range: colours.slice(0, curves.length) }],
    legends: [{ fill: 'colour', orient: 'none', legendX: 0, legendY: 350, direction: 'horizontal', labelFont: FONT, labelLimit: 400, title: 'equal error rate: \u25c6', titleFont: FONT }],
    marks: [rocPanel('linear', 0, 340, smallestFar), rocPanel('log', 420, 340, smallestFar)]
  })
}

/**
 * Principal components of `points` (rows of equal length): the first two coordinates of each.
 */
async function pca2d (points: readonly Float32Array[]): Promise<Array<[number, number]>> {
  const { PCA } = await import('ml-pca')
  const rows = points.map((p) => Array.from(p))
  const pca = new PCA(rows, { center: true, scale: false })
  const projected = pca.predict(rows, { nComponents: 2 })
  return projected.to2DArray().map((r: number[]) => [r[0] ?? 0, r[1] ?? 0])
}

/** Test embeddings projected to 2-D by PCA, one colour per class. */
export async function embeddingMapSvg (model: SiameseModel, set: LabelledImages, title: string, limit = 2000): Promise<string> {
  const count = Math.min(set.count, limit)
  const images = Array.from({ length: count }, (_, i) => imageBytes(set, i))
  const embeddings = await model.embed(images)
  const xy = await pca2d(embeddings)
  const values = xy.map(([x, y], i) => ({ x, y, cls: set.classes[set.labels[i]] }))
  return renderSvg({
    $schema: 'https://vega.github.io/schema/vega/v5.json',
    width: 560,
    height: 480,
    padding: 16,
    background: 'white',
    title: { text: title, font: FONT, fontSize: 16, anchor: 'start' },
    data: [{ name: 'points', values }],
    scales: [
      { name: 'x', type: 'linear', domain: { data: 'points', field: 'x' }, range: 'width', nice: true, zero: false },
      { name: 'y', type: 'linear', domain: { data: 'points', field: 'y' }, range: 'height', nice: true, zero: false },
      { name: 'colour', type: 'ordinal', domain: [...set.classes], range: { scheme: 'category10' } }
    ],
    axes: [
      { orient: 'bottom', scale: 'x', title: 'first principal component', labelFont: FONT, titleFont: FONT },
      { orient: 'left', scale: 'y', title: 'second principal component', labelFont: FONT, titleFont: FONT }
    ],
    legends: [{ fill: 'colour', title: 'class', labelFont: FONT, titleFont: FONT, symbolType: 'circle' }],
    marks: [{
      type: 'symbol',
      from: { data: 'points' },
      encode: { enter: { x: { scale: 'x', field: 'x' }, y: { scale: 'y', field: 'y' }, fill: { scale: 'colour', field: 'cls' }, fillOpacity: { value: 0.7 }, size: { value: 14 } } }
    }]
  })
}

/** Drawing scale of an image: about 84 pixels wide, never below its own size. */
function drawScale (set: LabelledImages): number {
  return Math.max(1, Math.round(84 / set.width))
}

/** Pixels of one image of `set` as a PNG data URL, scaled up without smoothing. */
async function pngUrl (set: LabelledImages, pixels: Uint8Array, scale: number): Promise<string> {
  const buffer = await sharp()(Buffer.from(pixels), { raw: { width: set.width, height: set.height, channels: set.channels ?? 1 } })
    .resize(set.width * scale, set.height * scale, { kernel: 'nearest' }).png().toBuffer()
  return `data:image/png;base64,${buffer.toString('base64')}`
}

function escapeXml (text: string): string {
  return text.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c] as string)
}

/**
 * A sheet of the first `count` fixed test pairs (half same, half different): both images, the
 * predicted P(same), framed green when the verdict (at 0.5) is right and red when wrong.
 */
export async function pairsSheetSvg (model: SiameseModel, set: LabelledImages, title: string, count = 32): Promise<string> {
  const pairs = testPairs(set)
  const n = Math.min(count, pairs.left.length)
  const pick = (i: number): Uint8Array => imageBytes(set, i)
  const left = Array.from({ length: n }, (_, k) => pick(pairs.left[k]))
  const right = Array.from({ length: n }, (_, k) => pick(pairs.right[k]))
  const p = await model.predict(left, right)
  const scale = drawScale(set)
  const w = set.width * scale
  const h = set.height * scale
  const cellW = 2 * w + 30
  const cellH = h + 46
  const columns = 8
  const rows = Math.ceil(n / columns)
  const png = async (pixels: Uint8Array): Promise<string> => pngUrl(set, pixels, scale)
  const cells: string[] = []
  for (let k = 0; k < n; k++) {
    const same = pairs.same[k] === 1
    const correct = (p[k] >= 0.5) === same
    const x = 10 + (k % columns) * cellW
    const y = 44 + Math.floor(k / columns) * cellH
    const colour = correct ? '#2ca02c' : '#d62728'
    cells.push(
      `<rect x="${x}" y="${y}" width="${cellW - 10}" height="${cellH - 8}" rx="4" fill="#f7f7f7" stroke="${colour}" stroke-width="3"/>`,
      `<image x="${x + 5}" y="${y + 5}" width="${w}" height="${h}" href="${await png(left[k])}"/>`,
      `<image x="${x + 15 + w}" y="${y + 5}" width="${w}" height="${h}" href="${await png(right[k])}"/>`,
      `<text x="${x + (cellW - 10) / 2}" y="${y + h + 27}" text-anchor="middle" font-family="${FONT}" font-size="14" fill="${colour}">` +
        `${same ? 'same' : 'different'}: P(same) ${(p[k]).toFixed(2)} ${correct ? '\u2713' : '\u2717'}</text>`
    )
  }
  const width = 20 + columns * cellW - 10
  const height = 54 + rows * cellH
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">` +
    '<rect width="100%" height="100%" fill="white"/>' +
    `<text x="10" y="28" font-family="${FONT}" font-size="18">${escapeXml(title)}</text>` +
    `${cells.join('')}</svg>`
}

/**
 * A sheet of augmented training examples: one row per class (up to 8), the image as it is, then
 * `variants` augmented copies drawn as the trainer draws them (seeded).
 */
export async function augmentSheetSvg (set: LabelledImages, augment: NativeAugment, seed: number, title: string, variants = 7): Promise<string> {
  const channels = set.channels ?? 1
  const size = set.width * set.height * channels
  const firstOfClass: number[] = []
  for (let i = 0; i < set.count && firstOfClass.length < 8; i++) {
    if (!firstOfClass.some((j) => set.labels[j] === set.labels[i])) firstOfClass.push(i)
  }
  const originals = firstOfClass.map((i) => imageBytes(set, i))
  // Each original repeated `variants` times, augmented in one call.
  const repeated = new Uint8Array(originals.length * variants * size)
  originals.forEach((pixels, r) => { for (let v = 0; v < variants; v++) repeated.set(pixels, (r * variants + v) * size) })
  const augmented = binding().augmentImages(repeated, originals.length * variants, set.width, set.height, channels, augment, seed)
  const scale = drawScale(set)
  const w = set.width * scale
  const h = set.height * scale
  const cells: string[] = []
  for (let r = 0; r < originals.length; r++) {
    const y = 44 + r * (h + 12)
    const label = set.classes[set.labels[firstOfClass[r] ?? 0]] ?? ''
    cells.push(`<text x="10" y="${y + h / 2 + 5}" font-family="${FONT}" font-size="13">${escapeXml(label.slice(0, 14))}</text>`,
      `<image x="120" y="${y}" width="${w}" height="${h}" href="${await pngUrl(set, originals[r], scale)}"/>`)
    for (let v = 0; v < variants; v++) {
      const k = r * variants + v
      cells.push(`<image x="${140 + (v + 1) * (w + 8)}" y="${y}" width="${w}" height="${h}" href="${await pngUrl(set, augmented.subarray(k * size, (k + 1) * size), scale)}"/>`)
    }
  }
  const width = 150 + (variants + 1) * (w + 8)
  const height = 54 + originals.length * (h + 12)
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">` +
    '<rect width="100%" height="100%" fill="white"/>' +
    `<text x="10" y="28" font-family="${FONT}" font-size="18">${escapeXml(title)}</text>` +
    `<line x1="${134 + w}" y1="40" x2="${134 + w}" y2="${height - 6}" stroke="#999"/>${cells.join('')}</svg>`
}
