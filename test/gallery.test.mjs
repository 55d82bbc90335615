// Galleries (lib/gallery.ts, native/core/gallery_index.h): enrolment in SQLite, exact search
// against a brute force over model.compare, duplicates, removal, reopening, the model's
// fingerprint (a gallery of another model refused, or re-embedded), a SIGKILL during enrolment
// (nothing acknowledged is lost), and the server's gallery endpoints.
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import sharp from 'sharp'
import { createModel, loadModel, openGallery, serve } from 'siamese-torch'
import { root } from './helpers/run.mjs'
import { image, smallDigits } from './helpers/small-data.mjs'

const scratch = mkdtempSync(join(tmpdir(), 'siamese-gallery-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

const data = await smallDigits()
const raw = (i) => ({ data: image(data.test, i), width: 28, height: 28, channels: 1 })
const label = (i) => String(data.test.labels[i])
const png = async (i) => sharp(Buffer.from(image(data.test, i)), { raw: { width: 28, height: 28, channels: 1 } }).png().toBuffer()

// A model of each kind of score: pair-ce (the head's P(same)) and contrastive (the distance).
const pairCe = await createModel({ seed: 1, threads: 1 })
const contrastive = await createModel({ seed: 1, threads: 1, loss: 'contrastive' })
t.teardown(() => { pairCe.dispose(); contrastive.dispose() })

const enrolled = Array.from({ length: 60 }, (_, i) => 4 * i) // every 4th test digit: all classes
const queries = [1, 2, 3, 5, 6]

for (const [name, model] of [['pair-ce', pairCe], ['contrastive', contrastive]]) {
  t.test(`identify is exact (${name}): the top k of every item compared one by one`, async (t) => {
    const gallery = await openGallery(join(scratch, `exact-${name}.sqlite`), model)
    t.teardown(() => gallery.close())
    // Enrolled in uneven groups, so that the index grows across calls.
    for (let start = 0; start < enrolled.length; start += 7) {
      const group = enrolled.slice(start, start + 7)
      for (const l of new Set(group.map(label))) {
        await gallery.enrol(l, group.filter((i) => label(i) === l).map(raw))
      }
    }
    t.equal(gallery.size, enrolled.length)
    const ids = new Map(gallery.list({ limit: 1000 }).items.map((item) => [item.sha256, item]))
    t.equal(ids.size, enrolled.length, 'every item listed once')
    const found = await gallery.identify(queries.map(raw), { k: 8 })
    for (const [qi, q] of queries.entries()) {
      const verdicts = await model.compare(enrolled.map(() => raw(q)), enrolled.map(raw))
      const order = enrolled.map((e, j) => ({ e, ...verdicts[j] }))
        // The model's own order: P(same) for pair-ce, the distance for the distance losses.
        .sort((a, b) => (name === 'pair-ce' ? b.pSame - a.pSame : a.distance - b.distance))
      const got = found[qi]
      t.equal(got.length, 8)
      t.same(got.map((m) => m.label), order.slice(0, 8).map((o) => label(o.e)), `query ${q}: the labels of the 8 best`)
      const close = got.every((m, j) => Math.abs(m.pSame - order[j].pSame) < 1e-5 && Math.abs(m.distance - order[j].distance) < 1e-4 &&
        m.same === order[j].same)
      t.ok(close, `query ${q}: P(same), distance and verdict of each as compare() gives them`)
    }
    // One image gives one list; classify groups the neighbours by label.
    const one = await gallery.identify(raw(queries[0]), { k: 3 })
    t.same(one, found[0].slice(0, 3))
    const verdict = await gallery.classify(raw(queries[0]), { k: 8 })
    t.equal(verdict.label, found[0][0].label, 'the label of the nearest item')
    t.equal(verdict.known, found[0][0].same)
    t.equal(verdict.classes.reduce((n, c) => n + c.count, 0), 8, 'every neighbour counted once')
    t.equal(verdict.classes[0].score, Math.max(...verdict.classes.map((c) => c.score)), 'best class first')
    t.ok(verdict.classes.every((c) => c.examples.every((m) => m.label === c.label) && c.score === c.examples[0].pSame))
  })
}

t.test('enrol, duplicates, list, labels, images, removal', async (t) => {
  const file = join(scratch, 'ops.sqlite')
  const gallery = await openGallery(file, pairCe)
  const [a, b] = await gallery.enrol('seven', [await png(0), await png(1)])
  t.ok(a.id > 0 && b.id === a.id + 1, 'ids in order')
  t.match(a.sha256, /^[0-9a-f]{64}$/)
  const again = await gallery.enrol('seven', await png(0))
  t.same(again, [a], 'the same image under the same label: the item it already is')
  t.equal(gallery.size, 2)
  const other = await gallery.enrol('other', [await png(0)])
  t.not(other[0].id, a.id, 'the same image under another label is another item')
  t.same(gallery.labels(), [{ label: 'other', count: 1 }, { label: 'seven', count: 2 }])
  t.same(gallery.list({ label: 'seven' }).items.map((i) => i.id), [a.id, b.id])
  t.equal(gallery.list({ limit: 1, offset: 1 }).items[0].id, b.id)
  t.equal(gallery.list({ limit: 1 }).total, 3)
  const stored = await sharp(gallery.image(a.id)).raw().toBuffer({ resolveWithObject: true })
  t.same([stored.info.width, stored.info.height], [28, 28], 'the image is kept at the model\'s input size')
  t.same(Buffer.from(stored.data.filter((_, i) => i % stored.info.channels === 0)), Buffer.from(image(data.test, 0)), 'pixel for pixel')
  t.equal(gallery.image(999), undefined)

  t.equal(await gallery.remove([b.id, 999]), 1, 'removes those present')
  t.equal(gallery.size, 2)
  t.ok((await gallery.identify(await png(1), { k: 10 })).every((m) => m.id !== b.id), 'a removed item is never found')
  t.equal(await gallery.removeLabel('other'), 1)
  const [c] = await gallery.enrol('seven', await png(2))
  t.ok(c.id > other[0].id, 'ids are never reused')
  await t.rejects(gallery.enrol('', await png(0)), { code: 'ERR_INVALID_ARG' })
  await t.rejects(gallery.enrol('x', []), { code: 'ERR_INVALID_ARG' })
  await t.rejects(gallery.enrol('x', Buffer.from('not an image')), { code: 'ERR_INVALID_ARG' })
  await t.rejects(gallery.identify(await png(0), { k: 0 }), { code: 'ERR_INVALID_ARG' })
  t.equal(gallery.size, 2, 'refused calls add nothing')
  gallery.close()
  await t.rejects(gallery.identify(await png(0)), { code: 'ERR_DISPOSED' })
  gallery.close()

  // Reopened: the same items, found the same way; the file is in WAL mode.
  const back = await openGallery(file, pairCe)
  t.equal(back.size, 2)
  t.same(back.list().items.map((i) => i.id), [a.id, c.id])
  const db = new Database(file, { readonly: true })
  t.equal(db.pragma('journal_mode', { simple: true }), 'wal')
  db.close()
  back.close()
  await t.rejects(openGallery(join(scratch, 'missing.sqlite'), pairCe, { create: false }), { code: 'ERR_NOT_FOUND' })
  const junk = join(scratch, 'junk.sqlite')
  writeFileSync(junk, 'this is not a database, it is a text file long enough to have a header of sorts........')
  await t.rejects(openGallery(junk, pairCe), { code: 'ERR_BAD_FILE' })
})

t.test('the model fingerprint: a gallery of another model is refused, or re-embedded', async (t) => {
  const file = join(scratch, 'fingerprint.sqlite')
  const saved = join(scratch, 'model.safetensors')
  await pairCe.save(saved)
  const copy = await loadModel(saved)
  t.equal(await copy.fingerprint(), await pairCe.fingerprint(), 'a saved and loaded model keeps its fingerprint')
  const gallery = await openGallery(file, pairCe)
  await gallery.enrol('a', [raw(0), raw(4)])
  await gallery.enrol('b', [raw(8)])
  gallery.close()
  const same = await openGallery(file, copy)
  t.equal(same.size, 3, 'the loaded copy opens it')
  same.close()
  copy.dispose()

  const other = await createModel({ seed: 2, threads: 1 })
  t.teardown(() => other.dispose())
  t.not(await other.fingerprint(), await pairCe.fingerprint())
  await t.rejects(openGallery(file, other), { code: 'ERR_MODEL_MISMATCH', message: /another model/ })
  const reembedded = await openGallery(file, other, { reembed: true })
  const fresh = await openGallery(join(scratch, 'fresh.sqlite'), other)
  await fresh.enrol('a', [raw(0), raw(4)])
  await fresh.enrol('b', [raw(8)])
  const [x, y] = [await reembedded.identify(raw(2), { k: 3 }), await fresh.identify(raw(2), { k: 3 })]
  t.same(x.map((m) => [m.label, m.pSame, m.distance]), y.map((m) => [m.label, m.pSame, m.distance]), 're-embedded: as if enrolled with the new model')
  reembedded.close()
  fresh.close()
  await t.rejects(openGallery(file, pairCe), { code: 'ERR_MODEL_MISMATCH' }, 'and now the old model is the other one')
  const colour = await createModel({ seed: 1, threads: 1, tower: 'conv4', width: 32, height: 32, channels: 3 })
  t.teardown(() => colour.dispose())
  await t.rejects(openGallery(file, colour, { reembed: true }), { code: 'ERR_MODEL_MISMATCH', message: /cannot be re-embedded/ })
})

t.test('a SIGKILL during enrolment loses no acknowledged item', async (t) => {
  const file = join(scratch, 'killed.sqlite')
  const modelFile = join(scratch, 'killed-model.safetensors')
  await pairCe.save(modelFile)
  const script = join(scratch, 'enrol-forever.mjs')
  writeFileSync(script, `
    import { loadModel, openGallery } from ${JSON.stringify(join(root, 'dist', 'index.mjs'))}
    const model = await loadModel(${JSON.stringify(modelFile)}, { threads: 1 })
    const gallery = await openGallery(${JSON.stringify(file)}, model)
    for (let i = 0; ; i++) {
      const pixels = new Uint8Array(784).map((_, k) => (k * 7 + i * 13) % 256)
      const [item] = await gallery.enrol('l' + (i % 5), [{ data: pixels, width: 28, height: 28, channels: 1 }])
      process.stdout.write('ok ' + item.id + '\\n')
    }
  `)
  const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] })
  const acknowledged = []
  await new Promise((resolve) => {
    let text = ''
    child.stdout.on('data', (chunk) => {
      text += chunk
      const lines = text.split('\n')
      text = lines.pop()
      for (const line of lines) acknowledged.push(Number(line.split(' ')[1]))
      if (acknowledged.length >= 40 && !child.killed) child.kill('SIGKILL')
    })
    child.on('exit', resolve)
  })
  t.ok(acknowledged.length >= 40, `${acknowledged.length} enrolments acknowledged before the kill`)
  const db = new Database(file, { readonly: true })
  t.equal(db.pragma('integrity_check', { simple: true }), 'ok', 'the database is whole')
  const present = new Set(db.prepare('SELECT id FROM items').all().map((r) => r.id))
  db.close()
  t.ok(acknowledged.every((id) => present.has(id)), `all ${acknowledged.length} acknowledged items are there (${present.size} in all)`)
  const gallery = await openGallery(file, pairCe)
  t.equal(gallery.size, present.size, 'and the gallery opens with every item')
  gallery.close()
})

t.test('the server: /galleries, enrol (JSON and multipart), list, images, removal, /identify, /classify', async (t) => {
  const dir = join(scratch, 'served')
  const server = await serve({ models: { digits: pairCe, other: contrastive }, port: 0, galleries: dir })
  t.teardown(() => server.close())
  const url = (p) => `${server.url}${p}`
  const post = (p, body) => fetch(url(p), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  const b64 = async (i) => (await png(i)).toString('base64')
  const expectError = async (response, status, code) => {
    t.equal(response.status, status)
    const body = await response.json()
    t.equal(body.error?.code, code, body.error?.message)
  }

  t.same(await (await fetch(url('/galleries'))).json(), { galleries: [] }, 'none yet')
  await expectError(await post('/galleries/shelf/items', { label: 'a', image: await b64(0) }), 400, 'ERR_INVALID_ARG') // two models: which?
  let r = await post('/galleries/shelf/items', { label: 'zero', images: [await b64(0), await b64(4)], model: 'digits' })
  t.equal(r.status, 200)
  const enrolled = await r.json()
  t.equal(enrolled.model, 'digits')
  t.equal(enrolled.items.length, 2)
  t.equal(enrolled.size, 2)
  // multipart: a label field and image files
  const form = new FormData()
  form.set('label', 'one')
  form.append('images', new Blob([await png(8)], { type: 'image/png' }), 'a.png')
  form.append('images', new Blob([await png(12)], { type: 'image/png' }), 'b.png')
  r = await fetch(url('/galleries/shelf/items'), { method: 'POST', body: form })
  t.equal(r.status, 200)
  t.equal((await r.json()).size, 4)
  t.same(await (await fetch(url('/galleries'))).json(), { galleries: [{ name: 'shelf', model: 'digits', items: 4, labels: 2 }] })
  const list = await (await fetch(url('/galleries/shelf/items?label=one'))).json()
  t.equal(list.total, 2)
  t.same(list.labels, [{ label: 'one', count: 2 }, { label: 'zero', count: 2 }])
  const img = await fetch(url(`/galleries/shelf/items/${list.items[0].id}/image`))
  t.equal(img.headers.get('content-type'), 'image/png')
  t.same((await sharp(Buffer.from(await img.arrayBuffer())).metadata()).width, 28)

  // identify and classify: as the library answers
  const gallery = await openGallery(join(scratch, 'lib-view.sqlite'), pairCe)
  await gallery.enrol('zero', [raw(0), raw(4)])
  await gallery.enrol('one', [raw(8), raw(12)])
  const expected = await gallery.identify(raw(2), { k: 3 })
  const identified = await (await post('/identify', { gallery: 'shelf', image: await b64(2), k: 3 })).json()
  t.same(identified.matches.map((m) => [m.label, m.pSame, m.distance]), expected.map((m) => [m.label, m.pSame, m.distance]))
  const verdict = await gallery.classify(raw(2), { k: 4 })
  gallery.close()
  const classified = await (await post('/classify', { gallery: 'shelf', image: await b64(2), k: 4 })).json()
  t.equal(classified.label, verdict.label)
  t.equal(classified.known, verdict.known)
  t.same(classified.classes.map((c) => [c.label, c.count, c.score]), verdict.classes.map((c) => [c.label, c.count, c.score]))
  t.ok(classified.classes[0].examples[0].id > 0)
  const many = await (await post('/identify', { gallery: 'shelf', images: [await b64(2), await b64(3)], k: 2 })).json()
  t.equal(many.matches.length, 2, 'images: one list each')
  const multipart = new FormData()
  multipart.set('gallery', 'shelf')
  multipart.set('k', '2')
  multipart.append('image', new Blob([await png(2)], { type: 'image/png' }), 'q.png')
  const viaForm = await (await fetch(url('/classify'), { method: 'POST', body: multipart })).json()
  t.equal(viaForm.classes.reduce((n, c) => n + c.count, 0), 2, 'multipart classify, k from a field')

  // removal
  r = await fetch(url(`/galleries/shelf/items/${list.items[0].id}`), { method: 'DELETE' })
  t.same(await r.json(), { removed: 1, size: 3 })
  await expectError(await fetch(url(`/galleries/shelf/items/${list.items[0].id}`), { method: 'DELETE' }), 404, 'ERR_NOT_FOUND')
  t.same(await (await fetch(url('/galleries/shelf/items?label=zero'), { method: 'DELETE' })).json(), { removed: 2, size: 1 })
  await expectError(await fetch(url('/galleries/shelf/items'), { method: 'DELETE' }), 400, 'ERR_INVALID_ARG')
  r = await fetch(url('/galleries/shelf/items'), { method: 'PUT' })
  t.equal(r.status, 405)
  t.equal(r.headers.get('allow'), 'POST, GET, DELETE')

  // errors
  await expectError(await post('/identify', { gallery: 'nope', image: await b64(2) }), 404, 'ERR_NOT_FOUND')
  await expectError(await post('/identify', { gallery: '../etc', image: await b64(2) }), 400, 'ERR_INVALID_ARG')
  await expectError(await post('/identify', { image: await b64(2) }), 400, 'ERR_INVALID_ARG')
  await expectError(await post('/identify', { gallery: 'shelf' }), 400, 'ERR_INVALID_ARG')
  await expectError(await post('/classify', { gallery: 'shelf', image: await b64(2), k: 0 }), 400, 'ERR_INVALID_ARG')
  await expectError(await post('/galleries/shelf/items', { image: await b64(2) }), 400, 'ERR_INVALID_ARG') // no label
  await expectError(await post('/galleries/shelf/items', { label: 'x', image: await b64(2), model: 'other' }), 409, 'ERR_MODEL_MISMATCH')
  await expectError(await fetch(url('/galleries/shelf/items/1/image')), 404, 'ERR_NOT_FOUND')

  // A gallery of a model the server does not serve: 409, listed with its error.
  const foreign = await createModel({ seed: 9, threads: 1 })
  const g = await openGallery(join(dir, 'foreign.sqlite'), foreign)
  await g.enrol('x', raw(0))
  g.close()
  foreign.dispose()
  await expectError(await post('/identify', { gallery: 'foreign', image: await b64(2) }), 409, 'ERR_MODEL_MISMATCH')
  // One made by another program with a served model, never opened by the server: listed from its
  // file's counts; and a .sqlite file that is no gallery.
  const elsewhere = await openGallery(join(dir, 'made-elsewhere.sqlite'), pairCe)
  await elsewhere.enrol('a', [raw(0), raw(1)])
  await elsewhere.enrol('b', raw(2))
  elsewhere.close()
  writeFileSync(join(dir, 'junk.sqlite'), 'not a database')
  const listed = await (await fetch(url('/galleries'))).json()
  t.same(listed.galleries.map((x) => [x.name, x.error?.code ?? null]),
    [['foreign', 'ERR_MODEL_MISMATCH'], ['junk', 'ERR_NOT_FOUND'], ['made-elsewhere', null], ['shelf', null]])
  t.same(listed.galleries[2], { name: 'made-elsewhere', model: 'digits', items: 3, labels: 2 }, 'counted without opening it')

  const bare = await serve({ models: [pairCe], port: 0 })
  t.teardown(() => bare.close())
  const none = await fetch(`${bare.url}/galleries`)
  t.equal(none.status, 404, 'no galleries folder: 404')
})
