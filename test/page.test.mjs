// The server's page and live training, over HTTP (lib/page.ts): the static files with their
// content types, Content-Security-Policy and no path out of the page's folder; /page/info; the
// event stream of a TrainingFeed fed by hand (state first, epochs, throttled batches, sheets,
// done; a client that leaves is forgotten; close() ends the stream at once); /training/sheet.png;
// a server with no model until training adds one; and `siamese-torch train --serve`.
import t from 'tap'
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { get as httpGet } from 'node:http'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import sharp from 'sharp'
import { createModel, serve, TrainingFeed, version } from 'siamese-torch'
import { root } from './helpers/run.mjs'
import { image, smallDigits, writeIdxFolder } from './helpers/small-data.mjs'

const scratch = mkdtempSync(join(tmpdir(), 'siamese-page-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

const data = await smallDigits()
const model = await createModel({ seed: 1, threads: 1 })
t.teardown(() => model.dispose())
const png = async (i) => sharp(Buffer.from(image(data.test, i)), { raw: { width: 28, height: 28, channels: 1 } }).png().toBuffer()
const [png0, png1] = await Promise.all([png(0), png(1)])

const server = await serve({ models: { digits: model }, port: 0 })
t.teardown(() => server.close())

const expectError = async (t, response, status, code) => {
  t.equal(response.status, status, `${response.url}: ${status}`)
  t.match(response.headers.get('content-type'), /^application\/json/)
  const body = await response.json()
  t.equal(body.error?.code, code, body.error?.message)
  return body.error
}

/** One raw request line, as a browser or curl would never send it (fetch resolves dot segments first). */
function rawGet (port, path) {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`))
    let text = ''
    socket.on('data', (d) => { text += d })
    socket.on('error', reject)
    socket.on('close', () => resolve(text))
  })
}

/** An event-stream client: collects events, waits for the one wanted, and can leave. */
function openEvents (url, headers = {}) {
  const events = []
  const waiters = []
  let ended = false
  let onEnd
  const endedPromise = new Promise((resolve) => { onEnd = resolve })
  const check = () => {
    for (const w of [...waiters]) {
      const found = events.find((e, i) => i >= w.from && w.test(e))
      if (found) {
        waiters.splice(waiters.indexOf(w), 1)
        w.resolve(found)
      } else if (ended) {
        waiters.splice(waiters.indexOf(w), 1)
        w.reject(new Error(`the stream ended without the event awaited (got ${events.map((e) => e.event).join(', ')})`))
      }
    }
  }
  const ready = new Promise((resolve, reject) => {
    const req = httpGet(url, { headers: { accept: 'text/event-stream', ...headers } }, (res) => {
      let buffer = ''
      res.setEncoding('utf8')
      res.on('data', (chunk) => {
        buffer += chunk
        for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
          const block = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          const name = /^event: (.*)$/m.exec(block)?.[1]
          const payload = /^data: (.*)$/m.exec(block)?.[1]
          if (name !== undefined && payload !== undefined) events.push({ event: name, data: JSON.parse(payload), at: Date.now() })
          else if (block.startsWith(':')) events.push({ event: 'comment', data: block, at: Date.now() })
        }
        check()
      })
      res.on('end', () => { ended = true; check(); onEnd() })
      res.on('close', () => { ended = true; check(); onEnd() })
      resolve({ res, req })
    })
    req.on('error', reject)
  })
  return {
    events,
    ready,
    ended: endedPromise,
    /** The first event from index `from` on that passes `test`. */
    next: (test, from = 0) => new Promise((resolve, reject) => {
      waiters.push({ test: typeof test === 'string' ? (e) => e.event === test : test, from, resolve, reject })
      check()
    }),
    leave: async () => (await ready).req.destroy()
  }
}

const epoch = (n, extra = {}) => ({
  type: 'epoch',
  epoch: n,
  trainLoss: 1 / n,
  trainAccuracy: 0.5 + n / 20,
  testLoss: 1.1 / n,
  testAccuracy: 0.55 + n / 20,
  auc: 0.8,
  threshold: 0.5,
  seconds: 1.5,
  pairsPerSecond: 900,
  testClasses: 10,
  unseenClasses: 0,
  ...extra
})
const batch = (n, of = 50) => ({ type: 'batch', epoch: 1, epochs: 2, batch: n, batches: of, loss: 1 / n, lr: 0.001, pairsPerSecond: 1000, etaSeconds: of - n })

t.test('the page: index.html, app.js and style.css with their types, no-cache and a strict CSP', async (t) => {
  const home = await fetch(`${server.url}/`)
  t.equal(home.status, 200)
  t.equal(home.headers.get('content-type'), 'text/html; charset=utf-8')
  t.equal(home.headers.get('cache-control'), 'no-cache')
  const csp = home.headers.get('content-security-policy')
  t.match(csp, /(^|; )default-src 'self'(;|$)/)
  t.match(csp, /(^|; )img-src 'self' data: blob:(;|$)/)
  t.notMatch(csp, /unsafe-inline|unsafe-eval|\*/, 'no inline script or style, no eval, no wildcard')
  t.equal(home.headers.get('x-content-type-options'), 'nosniff')
  const html = await home.text()
  t.equal(html, readFileSync(join(root, 'lib', 'page', 'index.html'), 'utf8'), 'the file of lib/page, as built into dist/page')
  t.notMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'no inline script')
  t.notMatch(html, /\sstyle=|<style/, 'no inline style')
  t.notMatch(html, /https?:\/\//, 'nothing from another origin')
  // Every file the page refers to is served, with its type.
  const referenced = [...html.matchAll(/(?:src|href)="(\/page\/[^"]+)"/g)].map(([, path]) => path).sort()
  t.same(referenced, ['/page/app.js', '/page/style.css'])
  for (const [path, type] of [['/page/app.js', 'text/javascript; charset=utf-8'], ['/page/style.css', 'text/css; charset=utf-8'], ['/page/index.html', 'text/html; charset=utf-8']]) {
    const r = await fetch(`${server.url}${path}`)
    t.equal(r.status, 200, path)
    t.equal(r.headers.get('content-type'), type, path)
    t.equal(r.headers.get('cache-control'), 'no-cache', path)
    t.ok(r.headers.get('content-security-policy'), path)
    t.ok((await r.text()).length > 100, `${path} has content`)
  }
  const js = await (await fetch(`${server.url}/page/app.js`)).text()
  t.notMatch(js, /https?:\/\/(?!www\.w3\.org\/2000\/svg)/, 'app.js calls no other origin')
  t.notMatch(js, /\beval\(|new Function\(|innerHTML/, 'no eval, no HTML from strings')
})

t.test('only the page\'s own files: traversal and unknown names are 404 JSON', async (t) => {
  for (const path of ['/page/../package.json', '/page/%2e%2e/package.json', '/page/%2E%2E%2Fpackage.json', '/page/..%2f..%2fpackage.json',
    '/page/.%2e/lib/page.ts', '/page/..\\package.json', '/page//etc/passwd', '/page/page.js', '/page/app.js/', '/page/']) {
    const text = await rawGet(server.port, path)
    t.match(text, /^HTTP\/1\.1 404 /, `${path}: 404`)
    t.match(text, /"code":"ERR_NOT_FOUND"/, `${path}: ERR_NOT_FOUND`)
    t.notMatch(text, /"siamese-torch"|devDependencies|export class/, `${path}: nothing of the file it points at`)
  }
  await expectError(t, await fetch(`${server.url}/page/nope.js`), 404, 'ERR_NOT_FOUND')
  await expectError(t, await fetch(`${server.url}/training/other.png`), 404, 'ERR_NOT_FOUND')
  const post = await fetch(`${server.url}/`, { method: 'POST', body: 'x' })
  await expectError(t, post, 405, 'ERR_INVALID_ARG')
  t.equal(post.headers.get('allow'), 'GET')
  t.ok((await fetch(`${server.url}/compare`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ a: png0.toString('base64'), b: png1.toString('base64') }) })).ok,
    'the other routes are as they were')
})

t.test('/page/info: the models, whether training is watched, whether galleries are served', async (t) => {
  const info = await (await fetch(`${server.url}/page/info`)).json()
  t.same(info.models, [{ name: 'digits', width: 28, height: 28, channels: 1, loss: 'pair-ce', threshold: 0.5 }])
  t.equal(info.training, false)
  t.equal(info.galleries, false, 'no galleries folder')
  const withGalleries = await serve({ models: { digits: model }, port: 0, galleries: join(scratch, 'galleries') })
  t.equal((await (await fetch(`${withGalleries.url}/page/info`)).json()).galleries, true, 'a galleries folder')
  await withGalleries.close()
  await expectError(t, await fetch(`${server.url}/events`), 404, 'ERR_NOT_FOUND')
  await expectError(t, await fetch(`${server.url}/training/sheet.png`), 404, 'ERR_NOT_FOUND')
  const text = await (await fetch(`${server.url}/metrics`)).text()
  t.match(text, /^siamese_requests_total\{endpoint="page",status="200"\} \d+$/m, 'counted in /metrics')
  t.match(text, /^siamese_requests_total\{endpoint="page_info",status="200"\} \d+$/m)
})

t.test('a token guards the page\'s data, not the page itself', async (t) => {
  const guarded = await serve({ models: { digits: model }, port: 0, token: 's3cret', training: new TrainingFeed() })
  t.teardown(() => guarded.close())
  t.equal((await fetch(`${guarded.url}/`)).status, 200, 'the page loads without the token')
  t.equal((await fetch(`${guarded.url}/page/app.js`)).status, 200)
  for (const path of ['/page/info', '/events', '/training/sheet.png']) {
    const r = await fetch(`${guarded.url}${path}`)
    await expectError(t, r, 401, 'ERR_UNAUTHORIZED')
    t.equal(r.headers.get('www-authenticate'), 'Bearer')
  }
  const info = await fetch(`${guarded.url}/page/info`, { headers: { authorization: 'Bearer s3cret' } })
  t.equal(info.status, 200)
  t.equal((await info.json()).training, true)
})

t.test('/events: the state, then epochs, throttled batches, sheets and the end; /training/sheet.png', async (t) => {
  const feed = new TrainingFeed()
  const watched = await serve({ models: [], training: feed, port: 0 })
  t.teardown(() => watched.close())
  feed.push(epoch(1))
  await expectError(t, await fetch(`${watched.url}/training/sheet.png`), 404, 'ERR_NOT_FOUND')

  const stream = openEvents(`${watched.url}/events`)
  const { res } = await stream.ready
  t.equal(res.statusCode, 200)
  t.equal(res.headers['content-type'], 'text/event-stream; charset=utf-8')
  t.equal(res.headers['cache-control'], 'no-cache')
  const state = await stream.next('state')
  t.same(state.data, { history: [epoch(1)].map(({ type, ...m }) => m), batch: null, sheet: null, done: false, error: null }, 'the history so far first')
  t.equal(feed.watchers, 1, 'one subscriber')

  // Twenty batch events at once: at most one now and the latest 200 ms later, not twenty.
  const sent = Date.now()
  for (let i = 1; i <= 20; i++) feed.push(batch(i))
  const last = await stream.next((e) => e.event === 'batch' && e.data.batch === 20)
  const batches = stream.events.filter((e) => e.event === 'batch')
  t.ok(batches.length <= 2, `${batches.length} batch events for 20 pushed at once`)
  t.ok(last.at - sent >= 150, 'the latest one after the interval')
  t.same(last.data, batch(20))
  // Spread over a second: at most about 5 a second.
  const before = stream.events.length
  for (let i = 0; i < 10; i++) {
    feed.push(batch(21 + i))
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  await stream.next((e) => e.event === 'batch' && e.data.batch === 30)
  const spread = stream.events.slice(before).filter((e) => e.event === 'batch').length
  t.ok(spread >= 4 && spread <= 7, `${spread} batch events for 10 over a second`)

  feed.push(epoch(2))
  const second = await stream.next('epoch')
  t.equal(second.data.epoch, 2)
  t.equal(second.data.type, undefined, 'EpochMetrics, without the event\'s type')
  t.equal(second.data.testAccuracy, epoch(2).testAccuracy)

  const sheet = await sharp({ create: { width: 40, height: 20, channels: 3, background: '#2ca02c' } }).png().toBuffer()
  feed.publishSheet(sheet, 2)
  t.same((await stream.next('sheet')).data, { url: '/training/sheet.png?epoch=2', epoch: 2 })
  const served = await fetch(`${watched.url}/training/sheet.png?epoch=2`)
  t.equal(served.status, 200)
  t.equal(served.headers.get('content-type'), 'image/png')
  t.same(Buffer.from(await served.arrayBuffer()), sheet, 'the PNG published')

  // A page that connects now gets all of it at once.
  const late = openEvents(`${watched.url}/events`)
  const lateState = (await late.next('state')).data
  t.same(lateState.history.map((h) => h.epoch), [1, 2])
  t.equal(lateState.sheet, '/training/sheet.png?epoch=2')
  t.equal(lateState.batch.batch, 30)
  t.equal(feed.watchers, 2)

  feed.finish()
  t.same((await stream.next('done')).data, { error: null, epochs: 2 })
  t.same((await late.next('done')).data, { error: null, epochs: 2 })
  const after = openEvents(`${watched.url}/events`)
  const doneState = (await after.next('state')).data
  t.equal(doneState.done, true)
  t.equal(doneState.batch, null, 'no batch once done')

  // Clients that leave are forgotten at once.
  await Promise.all([stream.leave(), late.leave(), after.leave()])
  for (let i = 0; i < 50 && feed.watchers > 0; i++) await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(feed.watchers, 0, 'no subscriber left')
  feed.push(batch(31))
  feed.push(epoch(3))
  t.equal(feed.state.history.length, 3, 'the feed goes on without them')
})

t.test('close() ends the event streams at once, and a failed run says why', async (t) => {
  const feed = new TrainingFeed()
  const watched = await serve({ models: [], training: feed, port: 0 })
  const streams = [openEvents(`${watched.url}/events`), openEvents(`${watched.url}/events`)]
  await Promise.all(streams.map((s) => s.next('state')))
  t.equal(feed.watchers, 2)
  feed.finish('stopped by Ctrl-C')
  t.same((await streams[0].next('done')).data, { error: 'stopped by Ctrl-C', epochs: 0 })
  const started = Date.now()
  await watched.close()
  t.ok(Date.now() - started < 2000, `closed in ${Date.now() - started} ms, not after a heartbeat or a timeout`)
  await Promise.all(streams.map((s) => s.ended))
  t.equal(feed.watchers, 0)
  await t.rejects(fetch(`${watched.url}/`), 'refuses new connections')
})

t.test('no model until training adds one: addModel', async (t) => {
  await t.rejects(serve({ models: [], port: 0 }), { code: 'ERR_INVALID_ARG' }, 'no models and no training')
  await t.rejects(serve({ models: [], training: {}, port: 0 }), { code: 'ERR_INVALID_ARG' }, 'training must be a TrainingFeed')
  const feed = new TrainingFeed()
  const watched = await serve({ models: [], training: feed, port: 0 })
  t.teardown(() => watched.close())
  t.same((await (await fetch(`${watched.url}/page/info`)).json()), { models: [], training: true, galleries: false })
  const body = JSON.stringify({ a: png0.toString('base64'), b: png1.toString('base64') })
  const early = await fetch(`${watched.url}/compare`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
  t.ok(early.status >= 400, `compare before any model: ${early.status}`)
  t.equal((await early.json()).error?.code?.startsWith('ERR_'), true)
  await watched.addModel('digits', model)
  t.same(watched.models.get('digits'), model)
  t.same((await (await fetch(`${watched.url}/page/info`)).json()).models.map((m) => m.name), ['digits'])
  const r = await (await fetch(`${watched.url}/compare`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })).json()
  t.equal(r.pSame, (await model.compare(png0, png1)).pSame)
  await t.rejects(watched.addModel('digits', model), { code: 'ERR_INVALID_ARG' }, 'a name served already')
  await t.rejects(watched.addModel('a/b', model), { code: 'ERR_INVALID_ARG' }, 'a name that is no URL path part')
  await t.rejects(watched.addModel('other', {}), { code: 'ERR_INVALID_ARG' }, 'not a model')
  const file = join(scratch, 'loaded.safetensors')
  await model.save(file)
  await watched.addModel('loaded', file)
  t.same([...watched.models.keys()], ['digits', 'loaded'], 'a file, loaded (and freed by close)')
})

t.test('siamese-torch train --serve: the page watches the run, then serves the model until SIGTERM', async (t) => {
  const idx = join(scratch, 'idx')
  mkdirSync(idx)
  writeIdxFolder(idx, data)
  const out = join(scratch, 'served')
  const bad = spawn(process.execPath, ['dist/cli.js', 'train', '--host', '127.0.0.1', '--epochs', '1'], { cwd: root, env: { ...process.env, NODE_OPTIONS: '' } })
  let badErr = ''
  bad.stderr.on('data', (d) => { badErr += d })
  t.equal(await new Promise((resolve) => bad.on('exit', resolve)), 2, '--host without --serve is a usage error')
  t.match(badErr, /--host goes with --serve/)

  const child = spawn(process.execPath, ['dist/cli.js', 'train', '--serve', '0', '--json', '--data', idx, '--epochs', '2', '--seed', '1', '--out', out],
    { cwd: root, env: { ...process.env, NODE_OPTIONS: '' } })
  t.teardown(() => child.kill('SIGKILL'))
  let stdout = ''
  let stderr = ''
  const lines = []
  const waiters = []
  child.stderr.on('data', (d) => { stderr += d })
  child.stdout.on('data', (d) => {
    stdout += d
    const parts = stdout.split('\n')
    stdout = parts.pop()
    for (const line of parts) lines.push(JSON.parse(line))
    for (const w of [...waiters]) {
      const found = lines.find(w.test)
      if (found) { waiters.splice(waiters.indexOf(w), 1); w.resolve(found) }
    }
  })
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  const line = (test) => Promise.race([
    new Promise((resolve) => { const found = lines.find(test); if (found) resolve(found); else waiters.push({ test, resolve }) }),
    exited.then(({ code }) => { throw new Error(`exited with ${code} first: ${stderr}`) })
  ])

  const first = await line((l) => l.type === 'serve')
  t.match(first.url, /^http:\/\/127\.0\.0\.1:\d+$/, 'on loopback, at the port picked')
  t.same(first.models, [])
  t.same(lines[0], first, 'the first line says where')
  const info = await (await fetch(`${first.url}/page/info`)).json()
  t.equal(info.training, true)
  const stream = openEvents(`${first.url}/events`)
  const initial = (await stream.next('state')).data
  const done = await stream.next('done')
  t.equal(done.data.error, null)
  const epochs = [...initial.history.map((h) => h.epoch), ...stream.events.filter((e) => e.event === 'epoch').map((e) => e.data.epoch)]
  t.same(epochs, [1, 2], 'every epoch, in the state or as it came')
  const sheets = [...(initial.sheet === null ? [] : [Number(new URL(initial.sheet, first.url).searchParams.get('epoch'))]),
    ...stream.events.filter((e) => e.event === 'sheet').map((e) => e.data.epoch)]
  t.same(sheets, [1, 2].slice(sheets.length === 1 ? 1 : 0), 'a sheet after each epoch (a checkpoint each epoch under --serve)')
  const sheet = await fetch(`${first.url}/training/sheet.png`)
  t.equal(sheet.headers.get('x-epoch'), '2')
  const meta = await sharp(Buffer.from(await sheet.arrayBuffer())).metadata()
  t.equal(meta.format, 'png')
  t.ok(meta.width > 800, `the sheet is ${meta.width}x${meta.height}`)
  t.ok(existsSync(join(out, 'checkpoint-epoch-1.safetensors')), 'checkpoints every epoch unless --save-every says otherwise')

  const serving = await line((l) => l.type === 'serve' && l.models.length > 0)
  t.same(serving.models, ['model'])
  t.ok(lines.some((l) => l.type === 'done'), 'the run\'s summary first')
  const served = await (await fetch(`${first.url}/page/info`)).json()
  t.same(served.models.map((m) => m.name), ['model'])
  const compared = await (await fetch(`${first.url}/compare`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ a: png0.toString('base64'), b: png1.toString('base64'), model: 'model' })
  })).json()
  t.ok(compared.pSame >= 0 && compared.pSame <= 1, 'the trained model compares')

  child.kill('SIGTERM')
  const { code } = await exited
  t.equal(code, 0, `a graceful stop exits 0 ${stderr}`)
  await stream.ended
  t.notMatch(stderr, /not drawn/, 'every sheet was drawn')
  writeFileSync(join(scratch, 'stdout.txt'), JSON.stringify(lines))
})

t.test('train --serve --nproc 2: rank 0 serves, every rank checkpoints alike', { skip: version().distributed.length === 0 && 'no distributed back-end in this build' }, async (t) => {
  const idx = join(scratch, 'idx-nproc')
  mkdirSync(idx)
  writeIdxFolder(idx, data)
  const child = spawn(process.execPath, ['dist/cli.js', 'train', '--nproc', '2', '--serve', '0', '--json', '--data', idx, '--epochs', '1', '--out', join(scratch, 'nproc')],
    { cwd: root, env: { ...process.env, NODE_OPTIONS: '' } })
  t.teardown(() => child.kill('SIGKILL'))
  let stdout = ''
  let stderr = ''
  child.stderr.on('data', (d) => { stderr += d })
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)))
  const serving = await new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      stdout += d
      const found = stdout.split('\n').filter((l) => l.startsWith('{"type":"serve"')).map((l) => JSON.parse(l))
      if (found.some((l) => l.models.length > 0)) resolve(found)
    })
    exited.then((code) => reject(new Error(`exited with ${code}: ${stderr}`)))
  })
  t.equal(serving.length, 2, 'one server (rank 0\'s): its start and its model')
  t.same((await (await fetch(`${serving[0].url}/page/info`)).json()).models.map((m) => m.name), ['model'])
  child.kill('SIGTERM')
  // The launcher forwards the signal; rank 0 stops serving gracefully, and the run exits 0 as it does alone.
  t.equal(await exited, 0, stderr)
  t.equal(stderr, '', 'no rank reports an error')
  t.equal(stdout.split('\n').filter((l) => l.startsWith('{"type":"done"')).length, 1, 'one summary')
})
