// The page of a siamese-torch server: Compare, Classify against a gallery, and a training run
// watched live. Plain JavaScript, no framework and nothing fetched from anywhere but this server
// (its Content-Security-Policy allows nothing else). Every call carries the access token typed in
// the header, when there is one; that is why the event stream is read with fetch() rather than
// EventSource, and why images come as blob: URLs.

const $ = (id) => document.getElementById(id)
const TOKEN_KEY = 'siamese-torch-token'

// ---- calls to the server ----

/** A failed call: the server's `{ error: { code, message } }`, or what went wrong on the way. */
class ApiError extends Error {
  constructor (code, message, status) {
    super(message)
    this.code = code
    this.status = status
  }
}

function authHeaders (headers = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY)
  return token ? { ...headers, Authorization: `Bearer ${token}` } : headers
}

async function call (path, init = {}) {
  let response
  try {
    response = await fetch(path, { ...init, headers: authHeaders(init.headers) })
  } catch (err) {
    throw new ApiError('ERR_NETWORK', `the server cannot be reached (${err.message})`, 0)
  }
  if (response.ok) return response
  let error = null
  try {
    error = (await response.json()).error
  } catch {}
  if (response.status === 401) needToken()
  throw new ApiError(error?.code ?? `HTTP_${response.status}`, error?.message ?? response.statusText, response.status)
}

const getJson = async (path) => (await call(path)).json()
const postJson = async (path, body) => (await call(path, {
  method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body)
})).json()

/** An image of the server's as a blob: URL (an <img src> could not carry the token). */
async function imageUrl (path) {
  return URL.createObjectURL(await (await call(path)).blob())
}

const percent = (x, digits = 2) => `${(100 * x).toFixed(digits)}%`

/** A line at the top of the page; `problem` lines go once the thing works again. */
function say (text, problem = false) {
  $('status').textContent = text
  $('status').dataset.problem = String(problem)
}

function needToken () {
  say('This server needs an access token: type it in the field at the top, then press Use.', true)
  $('token').focus()
}

function showError (target, err) {
  const p = document.createElement('p')
  p.className = 'error'
  const code = document.createElement('strong')
  code.textContent = err.code ?? 'Error'
  p.append(code, `: ${err.message}`)
  target.replaceChildren(p)
}

function element (tag, className, text) {
  const e = document.createElement(tag)
  if (className) e.className = className
  if (text !== undefined) e.textContent = text
  return e
}

// ---- image slots: a file, a drop or a drawing ----

/** One image slot, made from the template: `suffix` names its controls (file-a, draw-a, clear-a). */
class Slot {
  constructor (container, suffix, title) {
    const node = $('slot-template').content.firstElementChild.cloneNode(true)
    container.append(node)
    this.title = title
    this.node = node
    this.drop = node.querySelector('.drop')
    this.preview = node.querySelector('.preview')
    this.pad = node.querySelector('.pad')
    this.empty = node.querySelector('.empty')
    this.file = node.querySelector('.file')
    this.drawButton = node.querySelector('.draw')
    this.clearButton = node.querySelector('.clear')
    node.querySelector('.slot-title').textContent = title
    node.querySelector('.file-text').textContent = `${title}: choose a file`
    this.file.id = `file-${suffix}`
    this.drawButton.id = `draw-${suffix}`
    this.clearButton.id = `clear-${suffix}`
    this.drawButton.setAttribute('aria-label', `Draw ${title}`)
    this.clearButton.setAttribute('aria-label', `Clear ${title}`)
    this.pad.id = `pad-${suffix}`
    this.pad.setAttribute('role', 'img')
    this.pad.setAttribute('aria-label', `Drawing area for ${title}: draw with a mouse, a finger or a pen`)
    this.source = null // { kind: 'file', file } | { kind: 'drawing' }
    this.drawn = false
    this.previewUrl = null

    // A file the browser cannot show may still be one the server reads (TIFF, AVIF...): say so.
    this.preview.addEventListener('error', () => {
      if (this.source?.kind !== 'file') return
      this.preview.hidden = true
      this.empty.hidden = false
      this.empty.textContent = `${this.source.file.name}: this browser cannot show it; the server will say whether it can read it`
    })
    this.file.addEventListener('change', () => { if (this.file.files[0]) this.useFile(this.file.files[0]) })
    this.drop.addEventListener('dragover', (e) => { e.preventDefault(); this.drop.classList.add('over') })
    this.drop.addEventListener('dragleave', () => this.drop.classList.remove('over'))
    this.drop.addEventListener('drop', (e) => {
      e.preventDefault()
      this.drop.classList.remove('over')
      const file = [...(e.dataTransfer?.files ?? [])].find((f) => f.type.startsWith('image/')) ?? e.dataTransfer?.files[0]
      if (!file) return
      this.file.value = '' // the picker's name would be another file's
      this.useFile(file)
    })
    this.drawButton.addEventListener('click', () => (this.source?.kind === 'drawing' ? this.clear() : this.startDrawing()))
    this.clearButton.addEventListener('click', () => this.clear())
    this.listenToPen()
    this.show()
  }

  useFile (file) {
    if (this.previewUrl) URL.revokeObjectURL(this.previewUrl)
    this.previewUrl = URL.createObjectURL(file)
    this.preview.src = this.previewUrl
    this.preview.alt = `${this.title}: ${file.name}`
    this.source = { kind: 'file', file }
    this.show()
  }

  startDrawing () {
    this.source = { kind: 'drawing' }
    this.file.value = ''
    this.wipe()
    this.show()
  }

  clear () {
    if (this.previewUrl) URL.revokeObjectURL(this.previewUrl)
    this.previewUrl = null
    this.preview.removeAttribute('src')
    this.file.value = ''
    this.source = null
    this.wipe()
    this.show()
  }

  wipe () {
    const g = this.pad.getContext('2d')
    g.fillStyle = '#000'
    g.fillRect(0, 0, this.pad.width, this.pad.height)
    this.drawn = false
  }

  show () {
    const kind = this.source?.kind
    this.empty.textContent = 'Drop an image here'
    this.preview.hidden = kind !== 'file'
    this.pad.hidden = kind !== 'drawing'
    this.empty.hidden = kind !== undefined
    this.drop.classList.toggle('drawing', kind === 'drawing')
    this.drawButton.setAttribute('aria-pressed', String(kind === 'drawing'))
  }

  listenToPen () {
    const pad = this.pad
    const g = pad.getContext('2d')
    let last = null
    const at = (e) => {
      const r = pad.getBoundingClientRect()
      return [(e.clientX - r.left) * pad.width / r.width, (e.clientY - r.top) * pad.height / r.height]
    }
    const stroke = (from, to) => {
      g.strokeStyle = '#fff'
      g.fillStyle = '#fff'
      g.lineWidth = pad.width / 12
      g.lineCap = 'round'
      g.lineJoin = 'round'
      g.beginPath()
      g.moveTo(from[0], from[1])
      g.lineTo(to[0], to[1])
      g.stroke()
      this.drawn = true
    }
    pad.addEventListener('pointerdown', (e) => {
      e.preventDefault()
      pad.setPointerCapture(e.pointerId)
      last = at(e)
      stroke(last, last)
    })
    pad.addEventListener('pointermove', (e) => {
      if (last === null) return
      for (const c of e.getCoalescedEvents?.() ?? [e]) {
        const next = at(c)
        stroke(last, next)
        last = next
      }
    })
    const lift = () => { last = null }
    pad.addEventListener('pointerup', lift)
    pad.addEventListener('pointercancel', lift)
  }

  /** The image as a data: URL (a file as it is; a drawing as a PNG), or an error saying what is missing. */
  async dataUrl () {
    if (this.source?.kind === 'file') {
      return new Promise((resolve, reject) => {
        const reader = new FileReader()
        reader.onload = () => resolve(reader.result)
        reader.onerror = () => reject(new ApiError('ERR_BAD_FILE', `${this.title}: the file cannot be read`, 0))
        reader.readAsDataURL(this.source.file)
      })
    }
    if (this.source?.kind === 'drawing' && this.drawn) return this.pad.toDataURL('image/png')
    throw new ApiError('ERR_INVALID_ARG', `${this.title}: choose or drop an image, or draw one`, 0)
  }
}

// ---- what the server serves ----

let info = { models: [], training: false, galleries: false }

async function loadInfo () {
  try {
    info = await getJson('/page/info')
    if ($('status').dataset.problem === 'true') say('')
  } catch (err) {
    if (err.status !== 401) say(`The server's description did not load: ${err.message}`, true)
    const waiting = err.status === 401 ? 'Type the access token at the top first' : 'The server did not answer'
    $('compare-model').replaceChildren(new Option(waiting, ''))
    $('classify-none').textContent = err.status === 401 ? 'Type the access token at the top to see the galleries.' : 'The galleries did not load.'
    return false
  }
  fillModels()
  $('training').hidden = !info.training
  $('nav-training').hidden = !info.training
  return true
}

function fillModels () {
  const select = $('compare-model')
  const chosen = select.value
  const options = info.models.map((m) => {
    const o = new Option(`${m.name} (${m.width}×${m.height}, ${m.channels === 3 ? 'colour' : 'grey'}, ${m.loss})`, m.name)
    return o
  })
  if (options.length === 0) {
    const o = new Option(info.training ? 'No model yet: the one in training is served when it ends' : 'No model served', '')
    options.push(o)
  }
  select.replaceChildren(...options)
  if (info.models.some((m) => m.name === chosen)) select.value = chosen
}

const modelInfo = (name) => info.models.find((m) => m.name === name)

// ---- Compare ----

const slotA = new Slot($('compare-slots'), 'a', 'Image A')
const slotB = new Slot($('compare-slots'), 'b', 'Image B')

async function compare () {
  const result = $('compare-result')
  const button = $('compare-go')
  const name = $('compare-model').value
  if (!name) {
    showError(result, new ApiError('ERR_NOT_FOUND', info.training ? 'no model yet: the model in training is served when training ends' : 'this server serves no model', 0))
    return
  }
  button.setAttribute('aria-busy', 'true')
  result.replaceChildren(element('p', 'hint', 'Comparing…'))
  try {
    const [a, b] = await Promise.all([slotA.dataUrl(), slotB.dataUrl()])
    const r = await postJson('/compare', { a, b, model: name })
    showComparison(r, modelInfo(name))
  } catch (err) {
    showError(result, err)
  } finally {
    button.removeAttribute('aria-busy')
  }
}

function showComparison (r, model) {
  const pairCe = (model?.loss ?? 'pair-ce') === 'pair-ce'
  const card = element('div', `comparison ${r.same ? 'same' : 'different'}`)
  card.append(element('p', 'verdict', r.same ? 'Same class' : 'Different classes'))
  const line = element('p', 'p-same')
  line.append(element('span', 'label', 'P(same) '), element('strong', null, percent(r.pSame)))
  line.querySelector('strong').id = 'p-same'
  card.append(line)
  const bar = element('div', 'bar')
  bar.setAttribute('aria-hidden', 'true')
  const fill = element('div', 'fill')
  fill.style.width = percent(r.pSame, 3)
  bar.append(fill)
  if (pairCe) {
    const mark = element('div', 'mark')
    mark.style.left = percent(r.threshold, 3)
    bar.append(mark)
  }
  card.append(bar)
  const facts = element('dl', 'facts')
  facts.append(element('dt', null, 'Distance'), element('dd', null, r.distance.toFixed(4)))
  facts.lastChild.id = 'distance'
  facts.append(element('dt', null, 'Threshold'), element('dd', null, pairCe ? `P(same) ≥ ${percent(r.threshold)}` : `distance ≤ ${r.threshold.toFixed(4)}`))
  card.append(facts)
  card.append(element('p', 'hint', pairCe
    ? `The model calls a pair the same class when P(same) is at least ${percent(r.threshold)}.`
    : `This model (${model?.loss}) calls a pair the same class when the distance between the embeddings is at most ${r.threshold.toFixed(4)}.`))
  $('compare-result').replaceChildren(card)
}

$('compare-go').addEventListener('click', compare)

// ---- Classify against a gallery ----

const slotQ = new Slot($('classify-slots'), 'q', 'Image to classify')
let thumbnails = []

async function loadGalleries () {
  const none = $('classify-none')
  const form = $('classify-form')
  let galleries = []
  if (info.galleries) {
    try {
      galleries = (await getJson('/galleries')).galleries ?? []
    } catch (err) {
      if (err.status !== 404) {
        none.textContent = `The galleries did not load: ${err.message}`
        none.hidden = false
        form.hidden = true
        return
      }
    }
  }
  if (galleries.length === 0) {
    none.textContent = 'No galleries on this server.'
    none.hidden = false
    form.hidden = true
    return
  }
  const select = $('classify-gallery')
  const chosen = select.value
  select.replaceChildren(...galleries.map((g) => {
    const option = g.error
      ? new Option(`${g.name} (unavailable: ${g.error.message})`, g.name)
      : new Option(`${g.name} (${g.items} item${g.items === 1 ? '' : 's'}, ${g.labels} label${g.labels === 1 ? '' : 's'}; model ${g.model})`, g.name)
    option.disabled = Boolean(g.error)
    return option
  }))
  if (galleries.some((g) => g.name === chosen)) select.value = chosen
  none.hidden = true
  form.hidden = false
}

async function classify () {
  const result = $('classify-result')
  const button = $('classify-go')
  const gallery = $('classify-gallery').value
  const k = Number($('classify-k').value)
  button.setAttribute('aria-busy', 'true')
  result.replaceChildren(element('p', 'hint', 'Classifying…'))
  try {
    const image = await slotQ.dataUrl()
    const r = await postJson('/classify', { gallery, image, ...(Number.isInteger(k) && k > 0 ? { k } : {}) })
    await showClasses(r)
  } catch (err) {
    showError(result, err)
  } finally {
    button.removeAttribute('aria-busy')
  }
}

async function showClasses (r) {
  for (const url of thumbnails) URL.revokeObjectURL(url)
  thumbnails = []
  const result = $('classify-result')
  if (!r.classes?.length) {
    result.replaceChildren(element('p', 'hint', `Nothing in ${r.gallery} is near this image.`))
    return
  }
  const [best] = r.classes
  // A gallery may say that even the nearest label is too far to be the image's (`known: false`).
  const head = element('p', 'verdict', r.known === false
    ? `No label is near enough (the nearest: ${best.label})`
    : `Best match: ${r.label ?? best.label}`)
  const list = element('ol', 'classes')
  for (const c of r.classes) {
    const item = element('li', 'class')
    const title = element('p', 'class-title')
    title.append(element('strong', 'class-label', c.label), ` ${percent(c.score, 1)} · ${c.count} of the nearest`)
    const bar = element('div', 'bar')
    bar.setAttribute('aria-hidden', 'true')
    const fill = element('div', 'fill')
    fill.style.width = percent(Math.max(0, Math.min(1, c.score)), 3)
    bar.append(fill)
    const examples = element('ul', 'examples')
    examples.setAttribute('aria-label', `Nearest examples of ${c.label}`)
    for (const ex of (c.examples ?? []).slice(0, 3)) {
      const li = element('li')
      const img = element('img')
      img.alt = `example of ${c.label}`
      img.width = 56
      img.height = 56
      try {
        const url = await imageUrl(`/galleries/${encodeURIComponent(r.gallery)}/items/${encodeURIComponent(ex.id)}/image`)
        thumbnails.push(url)
        img.src = url
      } catch {
        img.alt = `example of ${c.label} (its image did not load)`
      }
      const score = element('span', 'example-score', `match ${percent(Number(ex.score), 0)}`)
      score.title = `distance ${Number(ex.distance).toFixed(3)}`
      li.append(img, score)
      examples.append(li)
    }
    item.append(title, bar, examples)
    list.append(item)
  }
  result.replaceChildren(head, list, element('p', 'hint', `Gallery ${r.gallery}, model ${r.model}.`))
}

$('classify-go').addEventListener('click', classify)

// ---- Training, live ----

const training = { history: [], epochs: null, done: false, watching: null, sheetEpoch: -1, sheetUrl: null }
const SVG = 'http://www.w3.org/2000/svg'

function svgNode (tag, attributes, text) {
  const e = document.createElementNS(SVG, tag)
  for (const [k, v] of Object.entries(attributes)) e.setAttribute(k, String(v))
  if (text !== undefined) e.textContent = text
  return e
}

/** Round steps for an axis: 1, 2 or 5 times a power of ten, about `count` of them. */
function niceStep (span, count) {
  const raw = span / count
  const power = 10 ** Math.floor(Math.log10(raw))
  return [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? raw
}

/** A line chart: `series` of { name, cls, values: [[epoch, y]] }, x from epoch 1 to `xMax`. */
function drawChart (svg, { series, xMax, yMax, format, yTitle }) {
  const W = 360
  const H = 220
  const m = { left: 50, right: 18, top: 12, bottom: 40 }
  const x = (e) => m.left + (xMax === 1 ? 0.5 : (e - 1) / (xMax - 1)) * (W - m.left - m.right)
  const y = (v) => H - m.bottom - (v / yMax) * (H - m.top - m.bottom)
  const nodes = []
  const yStep = niceStep(yMax, 4)
  for (let v = 0; v <= yMax + 1e-9; v += yStep) {
    nodes.push(svgNode('line', { x1: m.left, x2: W - m.right, y1: y(v), y2: y(v), class: 'grid' }))
    nodes.push(svgNode('text', { x: m.left - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'tick' }, format(v, yStep)))
  }
  const xStep = Math.max(1, Math.ceil(xMax / 8))
  for (let e = 1; e <= xMax; e += xStep) {
    nodes.push(svgNode('line', { x1: x(e), x2: x(e), y1: H - m.bottom, y2: H - m.bottom + 5, class: 'axis' }))
    nodes.push(svgNode('text', { x: x(e), y: H - m.bottom + 18, 'text-anchor': 'middle', class: 'tick' }, String(e)))
  }
  nodes.push(svgNode('line', { x1: m.left, x2: W - m.right, y1: H - m.bottom, y2: H - m.bottom, class: 'axis' }))
  nodes.push(svgNode('line', { x1: m.left, x2: m.left, y1: m.top, y2: H - m.bottom, class: 'axis' }))
  nodes.push(svgNode('text', { x: (m.left + W - m.right) / 2, y: H - 4, 'text-anchor': 'middle', class: 'axis-title' }, 'epoch'))
  nodes.push(svgNode('text', { x: 12, y: (m.top + H - m.bottom) / 2, 'text-anchor': 'middle', class: 'axis-title', transform: `rotate(-90 12 ${(m.top + H - m.bottom) / 2})` }, yTitle))
  for (const s of series) {
    if (s.values.length === 0) continue
    const points = s.values.map(([e, v]) => `${x(e).toFixed(1)},${y(v).toFixed(1)}`).join(' ')
    nodes.push(svgNode('polyline', { points, class: `line ${s.cls}`, 'data-series': s.name, 'data-points': s.values.length }))
    for (const [e, v] of s.values) {
      nodes.push(s.square
        ? svgNode('rect', { x: x(e) - 4, y: y(v) - 4, width: 8, height: 8, class: `marker ${s.cls}` })
        : svgNode('circle', { cx: x(e), cy: y(v), r: 4.5, class: `marker ${s.cls}` }))
    }
  }
  svg.replaceChildren(...nodes)
}

function renderTraining () {
  const h = training.history
  const xMax = Math.max(training.epochs ?? 0, h.length === 0 ? 1 : h.at(-1).epoch, 2)
  const lossMax = 1.05 * Math.max(0.1, ...h.flatMap((r) => [r.trainLoss, r.testLoss]).filter(Number.isFinite))
  const lossStep = niceStep(lossMax, 4)
  drawChart($('loss-chart'), {
    xMax,
    yMax: lossStep * Math.ceil(lossMax / lossStep),
    format: (v, step) => v.toFixed(Math.max(0, -Math.floor(Math.log10(step) + 1e-9))),
    yTitle: 'loss',
    series: [
      { name: 'train loss', cls: 'train', values: h.map((r) => [r.epoch, r.trainLoss]) },
      { name: 'test loss', cls: 'test', square: true, values: h.map((r) => [r.epoch, r.testLoss]) }
    ]
  })
  drawChart($('accuracy-chart'), {
    xMax,
    yMax: 1,
    format: (v) => `${Math.round(100 * v)}%`,
    yTitle: 'accuracy',
    series: [
      { name: 'test accuracy', cls: 'accuracy', values: h.map((r) => [r.epoch, r.testAccuracy]) },
      { name: 'train accuracy', cls: 'train-accuracy', square: true, values: h.map((r) => [r.epoch, r.trainAccuracy]) }
    ]
  })
  const rows = h.map((r) => {
    const tr = element('tr')
    const th = element('th', null, String(r.epoch))
    th.scope = 'row'
    tr.append(th, ...[r.trainLoss.toFixed(4), r.testLoss.toFixed(4), percent(r.testAccuracy), r.auc.toFixed(4), r.seconds.toFixed(1)].map((t) => element('td', null, t)))
    return tr
  })
  $('epochs').tBodies[0].replaceChildren(...rows)
}

function showBatch (b) {
  training.epochs = b.epochs
  const eta = b.batch >= b.batches
    ? ' · measuring the test pairs'
    : Number.isFinite(b.etaSeconds) ? ` · about ${Math.max(0, Math.round(b.etaSeconds))} s left in this epoch` : ''
  $('progress-line').textContent = `Epoch ${b.epoch}/${b.epochs} · batch ${b.batch}/${b.batches} · loss ${b.loss.toFixed(4)} · ${Math.round(b.pairsPerSecond)} pairs/s${eta}`
  $('progress-bar').max = b.batches
  $('progress-bar').value = b.batch
}

function addEpoch (m) {
  training.history = [...training.history.filter((r) => r.epoch !== m.epoch), m].sort((p, q) => p.epoch - q.epoch)
  renderTraining()
  $('training-news').textContent = `Epoch ${m.epoch}${training.epochs ? ` of ${training.epochs}` : ''} done: test accuracy ${percent(m.testAccuracy)}, test loss ${m.testLoss.toFixed(4)}.`
}

async function showSheet (url, epoch) {
  if (url === null || epoch <= training.sheetEpoch) return
  training.sheetEpoch = epoch
  try {
    const blob = await imageUrl(url)
    if (epoch !== training.sheetEpoch) {
      URL.revokeObjectURL(blob)
      return
    }
    const img = $('sheet')
    img.onload = () => { if (training.sheetUrl && training.sheetUrl !== blob) URL.revokeObjectURL(training.sheetUrl); training.sheetUrl = blob }
    img.src = blob
    img.alt = `The first fixed test pairs after epoch ${epoch}: each pair's two images with the P(same) the model gives them, framed green when its verdict is right and red when wrong.`
    img.dataset.epoch = String(epoch)
    img.hidden = false
    $('sheet-caption').textContent = `After epoch ${epoch}. Green frames: the model's verdict is right; red: wrong.`
  } catch (err) {
    $('sheet-caption').textContent = `The sheet of epoch ${epoch} did not load: ${err.message}`
  }
}

function finishTraining (error) {
  training.done = true
  $('progress-bar').value = $('progress-bar').max
  const epochs = training.history.length
  $('progress-line').textContent = error
    ? `Training ended: ${error}`
    : `Training finished after ${epochs} epoch${epochs === 1 ? '' : 's'}. The trained model is served: compare with it below.`
  $('training-news').textContent = $('progress-line').textContent
  loadInfo()
}

function onEvent (name, data) {
  if (name === 'state') {
    training.history = data.history
    if (data.batch) showBatch(data.batch)
    renderTraining()
    if (data.sheet) showSheet(data.sheet, Number(new URL(data.sheet, location.href).searchParams.get('epoch')))
    if (data.done) finishTraining(data.error)
  } else if (name === 'batch') {
    showBatch(data)
  } else if (name === 'epoch') {
    addEpoch(data)
  } else if (name === 'sheet') {
    showSheet(data.url, data.epoch)
  } else if (name === 'done') {
    finishTraining(data.error)
  }
}

/** Reads /events (text/event-stream) with fetch, so that it carries the token; reconnects until the run is done. */
async function watchTraining () {
  training.watching?.abort()
  const controller = new AbortController()
  training.watching = controller
  while (!controller.signal.aborted) {
    try {
      const response = await call('/events', { headers: { Accept: 'text/event-stream' }, signal: controller.signal })
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
      let buffer = ''
      for (;;) {
        const { value, done } = await reader.read()
        if (done) break
        buffer += value.replace(/\r\n?/g, '\n')
        for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
          const block = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          let name = 'message'
          const data = []
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) continue
            const colon = line.indexOf(':')
            const field = colon < 0 ? line : line.slice(0, colon)
            const text = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '')
            if (field === 'event') name = text
            else if (field === 'data') data.push(text)
          }
          if (data.length > 0) onEvent(name, JSON.parse(data.join('\n')))
        }
      }
      if (training.done) return
    } catch (err) {
      if (controller.signal.aborted) return
      if (err.status === 401 || err.status === 404) return
      if (training.done) return
    }
    // The stream ended before the run did: the server went away, or a proxy cut it. Try again.
    $('progress-line').textContent = training.done ? $('progress-line').textContent : 'Lost the server; trying again…'
    await new Promise((resolve) => setTimeout(resolve, 2000))
  }
}

// ---- start ----

async function start () {
  if (!await loadInfo()) return
  if (info.training) watchTraining()
  await loadGalleries()
}

$('token').value = sessionStorage.getItem(TOKEN_KEY) ?? ''
$('token-form').addEventListener('submit', (e) => {
  e.preventDefault()
  const token = $('token').value.trim()
  if (token) sessionStorage.setItem(TOKEN_KEY, token)
  else sessionStorage.removeItem(TOKEN_KEY)
  say(token ? 'Token saved for this tab.' : 'Token cleared.')
  start()
})

start()
