// The HTTP server (lib/serve.ts): every endpoint, the answers of the model itself, every limit
// answered with a JSON error and its code (oversized body, a 20000x20000 PNG bomb, wrong content
// type, undecodable and too many images, unknown model, a slow client, a full queue, a missing
// token), the next request served after each, /metrics, a graceful close, and the command line.
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { crc32, deflateSync } from 'node:zlib'
import sharp from 'sharp'
import { createModel, serve, version } from 'siamese-torch'
import { root } from './helpers/run.mjs'
import { image, smallDigits } from './helpers/small-data.mjs'

const scratch = mkdtempSync(join(tmpdir(), 'siamese-serve-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

const data = await smallDigits()
const model = await createModel({ seed: 1, threads: 1 })
const file = join(scratch, 'digits.safetensors')
await model.save(file)
const png = async (i) => sharp(Buffer.from(image(data.test, i)), { raw: { width: 28, height: 28, channels: 1 } }).png().toBuffer()
const pngs = await Promise.all([0, 1, 2, 3].map(png))
const b64 = (b) => b.toString('base64')

/** A PNG whose header says width x height, with almost no pixels: a decompression bomb's header. */
function pngHeader (width, height) {
  const chunk = (type, body) => {
    const head = Buffer.alloc(8)
    head.writeUInt32BE(body.length, 0)
    head.write(type, 4, 'latin1')
    const crc = Buffer.alloc(4)
    crc.writeUInt32BE(crc32(Buffer.concat([Buffer.from(type, 'latin1'), body])), 0)
    return Buffer.concat([head, body, crc])
  }
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(width, 0)
  ihdr.writeUInt32BE(height, 4)
  ihdr[8] = 8 // bit depth; colour type 0 (grey), no interlace
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.alloc(64))), chunk('IEND', Buffer.alloc(0))])
}

const server = await serve({ models: [file], port: 0, limits: { bodyBytes: 1 << 20, images: 16, requestTimeoutMs: 1500 } })
t.teardown(() => server.close())
const get = async (path, init) => fetch(`${server.url}${path}`, init)
const post = async (path, body, headers = {}) => fetch(`${server.url}${path}`, {
  method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body)
})
const expectError = async (t, response, status, code) => {
  t.equal(response.status, status)
  const body = await response.json()
  t.equal(body.error?.code, code, body.error?.message)
  return body.error
}

t.test('health, server and model metadata (KServe v2)', async (t) => {
  t.equal(server.url, `http://127.0.0.1:${server.port}`, 'loopback by default')
  t.equal(server.models.get('digits').threads, version().threads, 'a loaded model gets the machine\'s default threads')
  t.same(await (await get('/v2/health/live')).json(), { live: true })
  t.same(await (await get('/v2/health/ready')).json(), { ready: true })
  t.equal((await (await get('/v2')).json()).name, 'siamese-torch')
  const meta = await (await get('/v2/models/digits')).json()
  t.equal(meta.name, 'digits')
  t.same(meta.outputs.map((o) => o.name), ['p_same', 'distance', 'embedding'])
  t.same(await (await get('/v2/models/digits/ready')).json(), { name: 'digits', ready: true })
  await expectError(t, await get('/v2/models/nope'), 404, 'ERR_NOT_FOUND')
  await expectError(t, await get('/v2/models/nope/ready'), 404, 'ERR_NOT_FOUND')
  await expectError(t, await get('/nowhere'), 404, 'ERR_NOT_FOUND')
  await expectError(t, await get('/compare'), 405, 'ERR_INVALID_ARG')
})

t.test('infer: pairs as encoded images or pixels, and embeddings; the model\'s own answers', async (t) => {
  const pSame = await model.predict([pngs[0], pngs[2]], [pngs[1], pngs[3]])
  const byBytes = await (await post('/v2/models/digits/infer', {
    id: 'r1',
    inputs: [{ name: 'left', datatype: 'BYTES', shape: [2], data: [b64(pngs[0]), b64(pngs[2])] }, { name: 'right', datatype: 'BYTES', shape: [2], data: [b64(pngs[1]), b64(pngs[3])] }]
  })).json()
  t.equal(byBytes.id, 'r1')
  t.equal(byBytes.model_name, 'digits')
  const p = byBytes.outputs.find((o) => o.name === 'p_same')
  t.same(p.shape, [2])
  t.ok(p.data.every((x, i) => Math.abs(x - pSame[i]) < 1e-6), 'P(same) as model.predict gives it')
  const pixels = (i) => Array.from(image(data.test, i))
  const byPixels = await (await post('/v2/models/digits/infer', {
    inputs: [{ name: 'left', datatype: 'UINT8', shape: [1, 28, 28], data: pixels(0) }, { name: 'right', datatype: 'UINT8', shape: [1, 28, 28], data: pixels(1) }]
  })).json()
  t.ok(Math.abs(byPixels.outputs[0].data[0] - pSame[0]) < 1e-6, 'the same from raw pixels')
  const [e] = await model.embed(pngs[0])
  const embedded = await (await post('/v2/models/digits/infer', { inputs: [{ name: 'images', datatype: 'BYTES', shape: [1], data: [b64(pngs[0])] }] })).json()
  t.same(embedded.outputs[0].shape, [1, 512])
  t.ok(embedded.outputs[0].data.every((x, i) => Math.abs(x - e[i]) < 1e-5), 'embeddings as model.embed gives them')
  await expectError(t, await post('/v2/models/digits/infer', { inputs: [{ name: 'x', datatype: 'BYTES', shape: [1], data: ['a'] }] }), 400, 'ERR_INVALID_ARG')
  await expectError(t, await post('/v2/models/digits/infer', { inputs: [{ name: 'left', datatype: 'UINT8', shape: [1, 28, 28], data: [1, 2] }, { name: 'right', datatype: 'UINT8', shape: [1, 28, 28], data: pixels(1) }] }), 400, 'ERR_INVALID_ARG')
})

t.test('compare and embed in plain JSON', async (t) => {
  const r = await (await post('/compare', { a: b64(pngs[0]), b: b64(pngs[1]) })).json()
  t.ok(Math.abs(r.pSame - await model.predict(pngs[0], pngs[1])) < 1e-6)
  t.ok(r.distance > 0)
  t.equal(r.threshold, 0.5)
  t.equal(r.same, r.pSame >= 0.5)
  // A data: URL, as a page's canvas gives it, is taken too.
  const url = await (await post('/compare', { a: `data:image/png;base64,${b64(pngs[0])}`, b: b64(pngs[1]) })).json()
  t.equal(url.pSame, r.pSame)
  const embedded = await (await post('/embed', { images: [b64(pngs[0]), b64(pngs[1])] })).json()
  t.equal(embedded.embeddings.length, 2)
  await expectError(t, await post('/compare', { a: b64(pngs[0]), b: b64(pngs[1]), model: 'other' }), 404, 'ERR_NOT_FOUND')
})

t.test('compare and embed take multipart uploads too; a truncated one is refused', async (t) => {
  const form = new FormData()
  form.append('a', new Blob([pngs[0]], { type: 'image/png' }), 'a.png')
  form.append('b', new Blob([pngs[1]], { type: 'image/png' }), 'b.png')
  const r = await (await fetch(`${server.url}/compare`, { method: 'POST', body: form })).json()
  t.equal(r.pSame, await model.predict(pngs[0], pngs[1]), 'the same answer as from JSON')
  const many = new FormData()
  for (const p of pngs.slice(0, 3)) many.append('images', new Blob([p]), 'x.png')
  t.equal((await (await fetch(`${server.url}/embed`, { method: 'POST', body: many })).json()).embeddings.length, 3)
  const tooMany = new FormData()
  for (let i = 0; i < 17; i++) tooMany.append('images', new Blob([pngs[0]]), 'x.png')
  await expectError(t, await fetch(`${server.url}/embed`, { method: 'POST', body: tooMany }), 413, 'ERR_TOO_LARGE')
  const missing = new FormData()
  missing.append('a', new Blob([pngs[0]]), 'a.png')
  await expectError(t, await fetch(`${server.url}/compare`, { method: 'POST', body: missing }), 400, 'ERR_INVALID_ARG')
  // The body ends (chunked, properly) in the middle of a part: the form itself is truncated.
  const part = `--XyZ\r\nContent-Disposition: form-data; name="a"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n${pngs[0].subarray(0, 20).toString('latin1')}`
  const chunk = Buffer.from(part, 'latin1')
  const truncated = await rawExchange(`POST /compare HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XyZ\r\nTransfer-Encoding: chunked\r\n\r\n${chunk.length.toString(16)}\r\n${part}\r\n0\r\n\r\n`)
  t.match(truncated, /^HTTP\/1\.1 400 /)
  t.match(truncated, /"code":"ERR_INVALID_ARG"/)
  t.match(truncated, /malformed multipart body/)
  t.ok((await post('/compare', { a: b64(pngs[0]), b: b64(pngs[1]) })).ok, 'served after it')
})

t.test('bad requests get a JSON error with the code, and the next request is served', async (t) => {
  await expectError(t, await post('/compare', 'a=1', { 'content-type': 'application/x-www-form-urlencoded' }), 415, 'ERR_INVALID_ARG')
  await expectError(t, await post('/compare', '{"a": '), 400, 'ERR_INVALID_ARG')
  await expectError(t, await post('/compare', { a: b64(pngs[0]) }), 400, 'ERR_INVALID_ARG')
  await expectError(t, await post('/compare', { a: b64(pngs[0]), b: b64(pngs[1].subarray(0, 40)) }), 400, 'ERR_BAD_FILE')
  const bomb = await expectError(t, await post('/compare', { a: b64(pngHeader(20000, 20000)), b: b64(pngs[1]) }), 413, 'ERR_TOO_LARGE')
  t.match(bomb.message, /20000x20000 is 400000000 pixels, more than the limit/)
  await expectError(t, await post('/compare', { a: 'x'.repeat(2 << 20), b: '' }), 413, 'ERR_TOO_LARGE')
  await expectError(t, await post('/embed', { images: Array(17).fill(b64(pngs[0])) }), 413, 'ERR_TOO_LARGE')
  t.ok((await post('/compare', { a: b64(pngs[0]), b: b64(pngs[1]) })).ok, 'served after all of them')
})

/** A raw HTTP exchange: `request` written, then the socket left open; resolves with what came back. */
function rawExchange (request, { waitMs = 5000 } = {}) {
  return new Promise((resolve) => {
    const socket = connect(server.port, '127.0.0.1', () => socket.write(Buffer.from(request, 'latin1')))
    let text = ''
    socket.on('data', (d) => { text += d })
    const timer = setTimeout(() => socket.destroy(), waitMs)
    socket.on('close', () => { clearTimeout(timer); resolve(text) })
  })
}

t.test('a slow client gets 408 ERR_TIMEOUT; a full queue answers 503 with Retry-After', async (t) => {
  const started = Date.now()
  const slow = await rawExchange('POST /compare HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"a":')
  t.match(slow, /^HTTP\/1\.1 408 /)
  t.match(slow, /"code":"ERR_TIMEOUT"/)
  t.ok(Date.now() - started < 4000, 'within the request timeout (1.5 s)')

  const busy = await serve({ models: { digits: model }, port: 0, limits: { queue: 1, requestTimeoutMs: 3000 } })
  t.teardown(() => busy.close())
  const held = connect(busy.port, '127.0.0.1', () => held.write('POST /compare HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{'))
  await new Promise((resolve) => setTimeout(resolve, 200))
  const refused = await fetch(`${busy.url}/compare`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
  t.equal(refused.status, 503)
  t.equal(refused.headers.get('retry-after'), '1')
  t.equal((await refused.json()).error.code, 'ERR_BUSY')
  held.destroy()
})

t.test('a bearer token guards everything but the health checks', async (t) => {
  const guarded = await serve({ models: { digits: model }, port: 0, token: 's3cret' })
  t.teardown(() => guarded.close())
  t.equal((await fetch(`${guarded.url}/v2/health/ready`)).status, 200)
  await expectError(t, await fetch(`${guarded.url}/v2/models/digits`), 401, 'ERR_UNAUTHORIZED')
  await expectError(t, await fetch(`${guarded.url}/v2/models/digits`, { headers: { authorization: 'Bearer nope' } }), 401, 'ERR_UNAUTHORIZED')
  t.equal((await fetch(`${guarded.url}/v2/models/digits`, { headers: { authorization: 'Bearer s3cret' } })).status, 200)
})

t.test('/metrics counts requests, latencies, images and the queue, in Prometheus text', async (t) => {
  const text = await (await get('/metrics')).text()
  t.match(text, /^siamese_requests_total\{endpoint="compare",status="200"\} \d+$/m)
  t.match(text, /^siamese_requests_total\{endpoint="compare",status="413"\} \d+$/m)
  t.match(text, /^siamese_request_duration_seconds_bucket\{endpoint="infer",le="\+Inf"\} \d+$/m)
  t.match(text, /^siamese_request_images_count \d+$/m)
  t.match(text, /^siamese_requests_in_flight 1$/m, 'this request itself')
  // The forward passes: 16 concurrent compares share fewer passes than 16.
  const before = passesOf(text)
  await Promise.all(Array.from({ length: 16 }, () => post('/compare', { a: b64(pngs[0]), b: b64(pngs[1]) })))
  const after = await (await get('/metrics')).text()
  const passes = passesOf(after) - before
  t.ok(passes >= 1 && passes < 16, `16 compares in ${passes} forward passes`)
  const name = Object.keys(Object.fromEntries(server.models))[0]
  const inf = Number(new RegExp(`^siamese_forward_pass_pairs_bucket\\{model="${name}",le="\\+Inf"\\} (\\d+)$`, 'm').exec(after)?.[1])
  t.equal(inf, passesOf(after), 'the +Inf bucket counts every pass')
  t.match(after, new RegExp(`^siamese_model_waiting_calls\\{model="${name}"\\} 0$`, 'm'))
})

function passesOf (text) {
  return [...text.matchAll(/^siamese_forward_pass_pairs_count\{model="[^"]+"\} (\d+)$/gm)].reduce((n, m) => n + Number(m[1]), 0)
}

t.test('close() finishes the requests in flight, then refuses new ones', async (t) => {
  const closing = await serve({ models: { digits: model }, port: 0 })
  const body = JSON.stringify({ a: b64(pngs[0]), b: b64(pngs[1]) })
  const request = `POST /compare HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`
  // Eight requests sent whole on their own connections before close() is called.
  const sent = []
  const answers = Array.from({ length: 8 }, () => new Promise((resolve) => {
    let text = ''
    const socket = connect(closing.port, '127.0.0.1')
    sent.push(new Promise((resolve) => socket.write(request, resolve)))
    socket.on('data', (d) => { text += d })
    socket.on('close', () => resolve(text))
  }))
  await Promise.all(sent)
  await new Promise((resolve) => setTimeout(resolve, 100))
  const closed = closing.close()
  t.ok((await Promise.all(answers)).every((text) => /^HTTP\/1\.1 200 /.test(text)), 'every request in flight answered')
  await closed
  await t.rejects(fetch(`${closing.url}/v2/health/live`), 'no longer listening')
})

t.test('siamese-torch serve: listens, answers, and stops on SIGTERM', async (t) => {
  const child = spawn(process.execPath, ['dist/cli.js', 'serve', file, '--port', '0', '--threads', '3'], { cwd: root, env: { ...process.env, NODE_OPTIONS: '' } })
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
  let stdout = ''
  const url = await new Promise((resolve) => child.stdout.on('data', (d) => {
    stdout += d
    const m = /serving digits at (http:\/\/\S+)/.exec(stdout)
    if (m) resolve(m[1])
  }))
  t.same(await (await fetch(`${url}/v2/models/digits/ready`)).json(), { name: 'digits', ready: true })
  t.match(stdout, /serving digits at \S+ \(3 LibTorch threads a model\)/, '--threads')
  const code = await new Promise((resolve) => { child.on('exit', (c) => resolve(c)); child.kill('SIGTERM') })
  clearTimeout(timer)
  t.equal(code, 0)
  writeFileSync(join(scratch, 'cli.log'), stdout)
})
