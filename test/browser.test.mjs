// The server's page in a real browser: Debian's Chromium (or $CHROMIUM) driven by playwright-core.
// Compare with two uploaded PNGs (P(same) as model.compare gives it, to the page's precision), with a
// drawing, and by keyboard alone; the training panel of `siamese-torch train --serve` while it trains
// (the epoch table grows from one row to two, the sheet loads), then SIGTERM and exit 0; the
// classify panel (galleries when the server has them, "no galleries" when not); contrast, labels and
// the 360 px layout. Screenshots of each state go to $SCREENSHOT_DIR (or a temporary folder); with
// UPDATE_SCREENSHOTS=1 the three of docs/serve.md are written to docs/images/ too.
/* global getComputedStyle, SVGElement, MutationObserver, DataTransfer */ // in page.evaluate(), run by the browser
import t from 'tap'
import { spawn } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import sharp from 'sharp'
import { datasets, serve, train } from 'siamese-torch'
import { root } from './helpers/run.mjs'
import { image, smallDigits, strided, writeIdxFolder } from './helpers/small-data.mjs'

const executablePath = process.env.CHROMIUM || '/usr/bin/chromium'

if (!existsSync(executablePath)) {
  t.test('the page in a browser', { skip: `no Chromium binary at ${executablePath} (install Debian's chromium, or set CHROMIUM to one)` }, () => {})
} else {
  await browserTests()
}

async function browserTests () {
  const { chromium } = await import('playwright-core')
  const scratch = mkdtempSync(join(tmpdir(), 'siamese-browser-'))
  t.teardown(() => rmSync(scratch, { recursive: true, force: true }))
  const shots = process.env.SCREENSHOT_DIR || join(scratch, 'screenshots')
  mkdirSync(shots, { recursive: true })
  const update = process.env.UPDATE_SCREENSHOTS === '1'
  const docs = join(root, 'docs', 'images')

  // A model trained for one epoch on 2,000 digits: P(same) that means something.
  const data = await smallDigits()
  const embedded = await datasets.embedded()
  const { model } = await train({ data: { train: strided(embedded.train, 4), test: data.test }, epochs: 1, seed: 1, saveEvery: 0 })
  t.teardown(() => model.dispose())
  const firstOf = (set, digit, skip = 0) => {
    for (let i = 0; i < set.count; i++) if (set.labels[i] === digit && skip-- === 0) return i
  }
  const pngOf = async (set, i) => sharp(Buffer.from(image(set, i)), { raw: { width: 28, height: 28, channels: 1 } }).png().toBuffer()
  const files = {}
  for (const [name, digit, skip] of [['three', 3, 1], ['other-three', 3, 2], ['seven', 7, 1]]) {
    files[name] = join(scratch, `${name}.png`)
    writeFileSync(files[name], await pngOf(data.test, firstOf(data.test, digit, skip)))
  }
  const bytes = (name) => readFileSync(files[name])

  const server = await serve({ models: { digits: model }, port: 0 })
  t.teardown(() => server.close())

  const browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] })
  t.teardown(() => browser.close())
  // Each page in a context of its own, closed with it: no page inherits another's connections or dialogs.
  const newPage = async (t) => {
    const context = await browser.newContext({ viewport: { width: 1000, height: 900 }, deviceScaleFactor: 1 })
    const page = await context.newPage()
    page.close = async () => context.close()
    // A test that fails half-way leaves no page behind to hold a server's connections.
    t.teardown(() => context.close())
    page.errors = []
    page.on('pageerror', (err) => page.errors.push(err.message))
    // A failed call is the page's to show (and the tests look at what it shows); the browser logs it too.
    page.on('console', (m) => { if (m.type() === 'error' && !/^Failed to load resource/.test(m.text())) page.errors.push(m.text()) })
    return page
  }
  const shoot = async (target, name, docName) => {
    const file = join(shots, `${name}.png`)
    await target.screenshot({ path: file })
    if (update && docName) copyFileSync(file, join(docs, docName))
    return file
  }
  const shown = async (page) => page.locator('#p-same').textContent()
  const expected = (pSame) => `${(100 * pSame).toFixed(2)}%`

  t.test('compare two uploaded PNGs: P(same) as model.compare gives it', async (t) => {
    const page = await newPage(t)
    await page.goto(server.url)
    await page.locator('#compare-model option[value="digits"]').waitFor({ state: 'attached' })
    await page.setInputFiles('#file-a', files.three)
    await page.setInputFiles('#file-b', files['other-three'])
    t.equal(await page.locator('#compare .preview').first().getAttribute('alt'), 'Image A: three.png', 'the preview says what it shows')
    t.equal(await page.locator('#compare .preview').first().evaluate((img) => img.complete && img.naturalWidth), 28, 'and shows it')
    await page.click('#compare-go')
    await page.locator('#p-same').waitFor()
    const truth = await model.compare(bytes('three'), bytes('other-three'))
    t.equal(await shown(page), expected(truth.pSame), `P(same) ${await shown(page)}`)
    t.equal(await page.locator('#distance').textContent(), truth.distance.toFixed(4))
    t.equal(await page.locator('#compare-result .verdict').textContent(), truth.same ? 'Same class' : 'Different classes')
    t.match(await page.locator('#compare-result').textContent(), /Threshold\s*P\(same\) ≥ 50\.00%/)
    await shoot(page, 'compare-files')
    await shoot(page.locator('#compare'), 'compare-panel', 'page-compare.png')

    // Another pair, and an error shown in the panel.
    await page.setInputFiles('#file-b', files.seven)
    await page.click('#compare-go')
    const other = await model.compare(bytes('three'), bytes('seven'))
    await page.waitForFunction((text) => document.querySelector('#p-same')?.textContent === text, expected(other.pSame))
    t.pass(`3 against 7: ${expected(other.pSame)} (3 against 3: ${expected(truth.pSame)})`)
    await page.setInputFiles('#file-b', { name: 'broken.png', mimeType: 'image/png', buffer: Buffer.from('not a png') })
    await page.waitForFunction(() => /^broken\.png: this browser cannot show it/.test(document.querySelectorAll('#compare .empty')[1].textContent))
    t.ok(await page.locator('#compare .empty').nth(1).isVisible(), 'a file the browser cannot show is said so, not shown broken')
    await page.click('#compare-go')
    await page.locator('#compare-result .error').waitFor()
    t.match(await page.locator('#compare-result .error').textContent(), /^ERR_BAD_FILE: b: not an image/)
    await shoot(page, 'compare-error')
    t.same(page.errors, [], 'no script errors')
    await page.close()
  })

  t.test('an image dropped on a slot; the token typed in the page', async (t) => {
    const guarded = await serve({ models: { digits: model }, port: 0, token: 'open sesame' })
    t.teardown(() => guarded.close())
    const page = await newPage(t)
    await page.goto(guarded.url)
    await page.waitForFunction(() => /needs an access token/.test(document.querySelector('#status').textContent))
    t.equal(await page.evaluate(() => document.activeElement.id), 'token', 'the token field has the focus')
    await shoot(page, 'token-needed')
    await page.fill('#token', 'open sesame')
    await page.keyboard.press('Enter')
    await page.locator('#compare-model option[value="digits"]').waitFor({ state: 'attached' })
    t.equal(await page.evaluate(() => sessionStorage.getItem('siamese-torch-token')), 'open sesame', 'kept for this tab only')
    // A drop, as a file dragged from the desktop arrives.
    for (const [index, name] of [[0, 'three'], [1, 'seven']]) {
      const transfer = await page.evaluateHandle(([base64, file]) => {
        const dt = new DataTransfer()
        dt.items.add(new File([Uint8Array.from(atob(base64), (c) => c.charCodeAt(0))], file, { type: 'image/png' }))
        return dt
      }, [bytes(name).toString('base64'), `${name}.png`])
      await page.locator('#compare .drop').nth(index).dispatchEvent('drop', { dataTransfer: transfer })
    }
    t.equal(await page.locator('#compare .preview').nth(1).getAttribute('alt'), 'Image B: seven.png')
    await page.click('#compare-go')
    await page.locator('#p-same').waitFor()
    t.equal(await shown(page), expected((await model.compare(bytes('three'), bytes('seven'))).pSame), 'compared, with the token')
    t.same(page.errors, [])
    await page.close()
  })

  t.test('draw in a slot with the mouse, then compare: a PNG of the drawing is sent', async (t) => {
    const page = await newPage(t)
    await page.goto(server.url)
    await page.locator('#compare-model option[value="digits"]').waitFor({ state: 'attached' })
    await page.click('#draw-a')
    t.equal(await page.getAttribute('#draw-a', 'aria-pressed'), 'true')
    const box = await page.locator('#pad-a').boundingBox()
    // A "7": a bar, then a stroke down to the left.
    const at = (x, y) => [box.x + x * box.width, box.y + y * box.height]
    await page.mouse.move(...at(0.25, 0.25))
    await page.mouse.down()
    await page.mouse.move(...at(0.75, 0.25), { steps: 8 })
    await page.mouse.move(...at(0.45, 0.8), { steps: 10 })
    await page.mouse.up()
    await page.setInputFiles('#file-b', files.seven)
    const request = page.waitForRequest((r) => r.url().endsWith('/compare') && r.method() === 'POST')
    const response = page.waitForResponse((r) => r.url().endsWith('/compare'))
    await page.click('#compare-go')
    const body = (await request).postDataJSON()
    t.match(body.a, /^data:image\/png;base64,/, 'the drawing goes as a PNG data URL')
    t.equal(body.model, 'digits')
    const drawn = Buffer.from(body.a.split(',')[1], 'base64')
    const meta = await sharp(drawn).metadata()
    t.same([meta.format, meta.width, meta.height], ['png', 280, 280])
    const stats = await sharp(drawn).greyscale().stats()
    t.ok(stats.channels[0].max > 200 && stats.channels[0].mean > 5 && stats.channels[0].mean < 100, `white strokes on black (mean ${stats.channels[0].mean.toFixed(1)})`)
    const answer = await (await response).json()
    await page.waitForFunction((text) => document.querySelector('#p-same')?.textContent === text, expected(answer.pSame))
    const truth = await model.compare(drawn, bytes('seven'))
    t.equal(expected(truth.pSame), expected(answer.pSame), `the drawing against a 7: ${expected(truth.pSame)}, as model.compare gives it`)
    await shoot(page, 'compare-drawn')
    await page.click('#clear-a')
    t.equal(await page.getAttribute('#draw-a', 'aria-pressed'), 'false')
    await page.click('#compare-go')
    t.match(await page.locator('#compare-result .error').textContent(), /Image A: choose or drop an image, or draw one/)
    t.same(page.errors, [])
    await page.close()
  })

  t.test('keyboard alone: tab order, visible focus, file pickers and buttons', async (t) => {
    const page = await newPage(t)
    await page.goto(server.url)
    await page.locator('#compare-model option[value="digits"]').waitFor({ state: 'attached' })
    const order = []
    for (let i = 0; i < 30; i++) {
      await page.keyboard.press('Tab')
      order.push(await page.evaluate(() => document.activeElement?.id || document.activeElement?.textContent?.trim() || document.activeElement?.tagName))
      if (order.at(-1) === 'compare-go') break
    }
    const wanted = ['Skip to the panels', 'token', 'compare-model', 'file-a', 'draw-a', 'clear-a', 'file-b', 'draw-b', 'clear-b', 'compare-go']
    t.same(order.filter((id) => wanted.includes(id)), wanted, `in order: ${order.join(', ')}`)
    const ring = await page.evaluate(() => {
      const s = getComputedStyle(document.activeElement)
      return { style: s.outlineStyle, width: parseFloat(s.outlineWidth), visible: document.activeElement.matches(':focus-visible') }
    })
    t.ok(ring.visible && ring.style !== 'none' && ring.width >= 2, `a visible focus ring (${ring.style} ${ring.width}px)`)
    await shoot(page, 'keyboard-focus')

    // The file inputs open their pickers from the keyboard; Enter on Compare compares. Chromium
    // ignores a picker asked for while the last one is still being closed, which a loaded machine
    // can make last seconds: a press with no picker within 5 s is pressed again (4 tries).
    for (const [input, file] of [['#file-a', files.three], ['#file-b', files['other-three']]]) {
      let chooser
      for (let attempt = 0; attempt < 4 && chooser === undefined; attempt++) {
        await page.focus(input)
        const waiting = page.waitForEvent('filechooser', { timeout: 5000 }).catch(() => undefined)
        await page.keyboard.press('Space')
        chooser = await waiting
      }
      t.ok(chooser, `Space on ${input} opens its file picker`)
      await chooser?.setFiles(file)
    }
    await page.focus('#compare-go')
    await page.keyboard.press('Enter')
    await page.locator('#p-same').waitFor()
    t.equal(await shown(page), expected((await model.compare(bytes('three'), bytes('other-three'))).pSame))
    t.equal(await page.getAttribute('#compare-result', 'aria-live'), 'polite', 'results are announced')
    t.equal(await page.getAttribute('#classify-result', 'aria-live'), 'polite')
    // Draw toggles with the keyboard too.
    await page.focus('#draw-b')
    await page.keyboard.press('Enter')
    t.equal(await page.getAttribute('#draw-b', 'aria-pressed'), 'true')
    t.same(page.errors, [])
    await page.close()
  })

  t.test('accessible names, alt texts and contrast; the layout at 360 px', async (t) => {
    const page = await newPage(t)
    await page.goto(server.url)
    await page.locator('#compare-model option[value="digits"]').waitFor({ state: 'attached' })
    await page.setInputFiles('#file-a', files.three)
    await page.setInputFiles('#file-b', files.seven)
    await page.click('#compare-go')
    await page.locator('#p-same').waitFor()
    const unnamed = await page.evaluate(() => [...document.querySelectorAll('input, select, button, canvas, img, svg[role="img"]')]
      .filter((e) => e.getClientRects().length > 0)
      .filter((e) => {
        if (e.tagName === 'IMG') return !e.alt
        if (e.tagName === 'BUTTON') return !(e.getAttribute('aria-label') || e.textContent.trim())
        if (e.tagName === 'CANVAS' || e.tagName === 'svg') return !(e.getAttribute('aria-label') || e.getAttribute('aria-labelledby'))
        return !(e.labels?.length || e.getAttribute('aria-label'))
      }).map((e) => e.id || e.outerHTML.slice(0, 60)))
    t.same(unnamed, [], 'every control, image and chart has a name')
    // WCAG AA: 4.5:1 for text (3:1 from 18.66 px bold or 24 px), against the nearest opaque background.
    const failures = await page.evaluate(() => {
      const rgb = (c) => (c.match(/[\d.]+/g) ?? []).map(Number)
      const lum = ([r, g, b]) => [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4 })
        .reduce((s, v, i) => s + v * [0.2126, 0.7152, 0.0722][i], 0)
      const background = (e) => {
        for (let n = e; n; n = n.parentElement) {
          const c = rgb(getComputedStyle(n).backgroundColor)
          if (c.length === 3 || c[3] > 0.9) return c
        }
        return [255, 255, 255]
      }
      const out = []
      for (const e of document.querySelectorAll('body *')) {
        if (!e.getClientRects().length || e.closest('[hidden]')) continue
        const text = [...e.childNodes].filter((n) => n.nodeType === 3).map((n) => n.textContent.trim()).join('')
        if (!text) continue
        const s = getComputedStyle(e)
        const fg = rgb(e instanceof SVGElement ? s.fill : s.color)
        const [l1, l2] = [lum(fg), lum(background(e))].sort((a, b) => b - a)
        const ratio = (l1 + 0.05) / (l2 + 0.05)
        const size = parseFloat(s.fontSize)
        const large = size >= 24 || (size >= 18.66 && Number(s.fontWeight) >= 700)
        if (ratio < (large ? 3 : 4.5)) out.push(`${text.slice(0, 30)}: ${ratio.toFixed(2)}`)
      }
      return out
    })
    t.same(failures, [], 'text contrast of at least 4.5:1 (3:1 large)')

    await page.setViewportSize({ width: 360, height: 740 })
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth)
    t.ok(overflow <= 360, `nothing wider than 360 px (${overflow})`)
    const slots = await page.evaluate(() => [...document.querySelectorAll('#compare .drop')].map((e) => e.getBoundingClientRect().width))
    t.ok(slots.every((w) => w >= 120), `both slots usable side by side (${slots.map(Math.round).join(', ')} px)`)
    await page.screenshot({ path: join(shots, 'narrow-360.png'), fullPage: true })
    t.same(page.errors, [])
    await page.close()
  })

  t.test('classify: "no galleries" on a server without, real galleries when the server has them', async (t) => {
    const page = await newPage(t)
    await page.goto(server.url)
    await page.waitForFunction(() => document.querySelector('#classify-none')?.textContent === 'No galleries on this server.')
    t.ok(await page.locator('#classify-form').isHidden(), 'no form to fill')
    await shoot(page.locator('#classify'), 'classify-none')
    await page.close()

    const folder = join(scratch, 'galleries')
    const withGalleries = await serve({ models: { digits: model }, port: 0, galleries: folder })
    t.teardown(() => withGalleries.close())
    const api = async (path, body) => fetch(`${withGalleries.url}${path}`, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
    if ((await api('/galleries')).status === 404) {
      t.comment('this server has no gallery endpoints yet: only the "no galleries" case is tested')
      return
    }
    // Three examples each of 3 and 7, from the training split.
    for (const digit of [3, 7]) {
      const images = []
      for (let k = 0; k < 3; k++) images.push((await pngOf(data.train, firstOf(data.train, digit, k))).toString('base64'))
      const r = await api('/galleries/digits/items', { label: String(digit), images, model: 'digits' })
      t.equal(r.status, 200, `enrolled three ${digit}s: ${JSON.stringify(await r.clone().json())}`)
    }
    const query = (bytes('seven')).toString('base64')
    const truth = await (await api('/classify', { gallery: 'digits', image: query, k: 5 })).json()
    t.ok(truth.classes?.length > 0, 'the API classifies')

    const gallery = await newPage(t)
    await gallery.goto(withGalleries.url)
    await gallery.locator('#classify-gallery option[value="digits"]').waitFor({ state: 'attached' })
    t.match(await gallery.locator('#classify-gallery').textContent(), /digits \(6 items, 2 labels; model digits\)/)
    await gallery.setInputFiles('#file-q', files.seven)
    await gallery.fill('#classify-k', '5')
    await gallery.click('#classify-go')
    await gallery.locator('#classify-result .classes').waitFor()
    const labels = await gallery.locator('#classify-result .class-label').allTextContents()
    t.same(labels, truth.classes.map((c) => c.label), `the classes, best first: ${labels.join(', ')}`)
    const thumbs = gallery.locator('#classify-result .examples img')
    await gallery.waitForFunction(() => [...document.querySelectorAll('#classify-result .examples img')].every((i) => i.complete && i.naturalWidth > 0))
    const alts = await thumbs.evaluateAll((imgs) => imgs.map((i) => i.alt))
    t.ok(alts.length >= 1 && alts.every((a) => /^example of [37]$/.test(a)), `thumbnails with alt texts: ${alts.join(', ')}`)
    t.ok(alts.filter((a) => a === `example of ${labels[0]}`).length <= 3, 'at most three examples a class')
    await shoot(gallery.locator('#classify'), 'classify-results', 'page-classify.png')
    t.same(gallery.errors, [])
    await gallery.close()
  })

  t.test('train --serve: the training panel follows the run, then the model is served until SIGTERM', async (t) => {
    // Enough digits that an epoch takes a few seconds: the page is there before the first ends.
    const idx = join(scratch, 'idx')
    mkdirSync(idx)
    writeIdxFolder(idx, { train: strided(embedded.train, 6), test: data.test })
    const child = spawn(process.execPath, ['dist/cli.js', 'train', '--serve', '0', '--json', '--data', idx, '--epochs', '2', '--seed', '1', '--out', join(scratch, 'run')],
      { cwd: root, env: { ...process.env, NODE_OPTIONS: '' } })
    t.teardown(() => child.kill('SIGKILL'))
    let stderr = ''
    child.stderr.on('data', (d) => { stderr += d })
    const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)))
    const lines = []
    let partial = ''
    const watchers = []
    child.stdout.on('data', (d) => {
      const parts = (partial + d).split('\n')
      partial = parts.pop()
      for (const line of parts) {
        const event = JSON.parse(line)
        lines.push(event)
        for (const w of [...watchers]) if (w.test(event)) { watchers.splice(watchers.indexOf(w), 1); w.resolve(event) }
      }
    })
    const line = (test) => Promise.race([
      new Promise((resolve) => { const found = lines.find(test); if (found) resolve(found); else watchers.push({ test, resolve }) }),
      exited.then((code) => { throw new Error(`the command exited (${code}) first: ${stderr}`) })
    ])
    const { url } = await line((e) => e.type === 'serve')

    const page = await newPage(t)
    // The rows of the epoch table, as they change, from before the page's own script runs.
    await page.addInitScript(() => {
      window.rowCounts = []
      document.addEventListener('DOMContentLoaded', () => {
        const body = document.querySelector('#epochs tbody')
        const note = () => { if (window.rowCounts.at(-1) !== body.rows.length) window.rowCounts.push(body.rows.length) }
        new MutationObserver(note).observe(body, { childList: true })
        note()
      })
    })
    await page.goto(url)
    await page.locator('#training').waitFor()
    t.ok(await page.locator('#nav-training').isVisible(), 'the panel is in the navigation')
    await page.waitForFunction(() => document.querySelectorAll('#epochs tbody tr').length >= 1, null, { timeout: 60_000 })
    await page.waitForFunction(() => /^Epoch \d\/2 · batch \d+\/\d+/.test(document.querySelector('#progress-line').textContent) || document.querySelectorAll('#epochs tbody tr').length === 2)
    await shoot(page, 'training-epoch-1')
    await page.waitForFunction(() => document.querySelectorAll('#epochs tbody tr').length === 2, null, { timeout: 60_000 })
    await page.waitForFunction(() => { const i = document.querySelector('#sheet'); return i.dataset.epoch === '2' && i.complete && i.naturalWidth > 0 }, null, { timeout: 30_000 })
    await page.waitForFunction(() => /^Training finished after 2 epochs/.test(document.querySelector('#progress-line').textContent), null, { timeout: 30_000 })
    const counts = await page.evaluate(() => window.rowCounts)
    t.ok(counts.indexOf(1) >= 0 && counts.indexOf(2) > counts.indexOf(1), `the epoch table grew from 1 row to 2 (${counts.join(' -> ')})`)
    t.same(await page.locator('#epochs tbody th').allTextContents(), ['1', '2'])
    const points = await page.locator('#loss-chart polyline').evaluateAll((ps) => ps.map((p) => `${p.dataset.series}:${p.dataset.points}`))
    t.same(points, ['train loss:2', 'test loss:2'], 'both loss curves have two points')
    t.same(await page.locator('#accuracy-chart polyline').evaluateAll((ps) => ps.map((p) => p.dataset.points)), ['2', '2'])
    t.match(await page.getAttribute('#sheet', 'alt'), /^The first fixed test pairs after epoch 2/)
    const epochs = lines.filter((e) => e.type === 'epoch')
    t.equal(await page.locator('#epochs tbody tr:nth-child(2) td:nth-child(4)').textContent(), `${(100 * epochs[1].testAccuracy).toFixed(2)}%`, 'the table shows the run\'s figures')
    await page.evaluate(() => window.scrollTo(0, 0))
    await shoot(page, 'training-done')
    await shoot(page.locator('#training'), 'training-panel', 'page-training.png')

    // The trained model is served: the Compare panel picks it up.
    await line((e) => e.type === 'serve' && e.models.length === 1)
    await page.locator('#compare-model option[value="model"]').waitFor({ state: 'attached' })
    await page.setInputFiles('#file-a', files.three)
    await page.setInputFiles('#file-b', files['other-three'])
    await page.click('#compare-go')
    await page.locator('#p-same').waitFor()
    t.match(await shown(page), /^\d+\.\d\d%$/, `the trained model compares: ${await shown(page)}`)
    t.same(page.errors, [], 'no script errors')

    child.kill('SIGTERM')
    t.equal(await exited, 0, `exits 0 after a graceful stop ${stderr}`)
    await page.close()
  })
}
