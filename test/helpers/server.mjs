// A local HTTP server on 127.0.0.1 that misbehaves on request: tests never reach the network.
import http from 'node:http'

/**
 * Serves `files` (name -> Buffer) under behaviours chosen by the first path segment:
 * /good/, /missing/ (404), /truncated/ (half the body, then the connection drops), /wrong/
 * (other bytes), /slow/ (a few bytes, then silence), /flaky/ (500 on the first request of each
 * file, then good), /redirect/ (302 to /good/). `hits` counts requests by path.
 */
export async function startServer (files) {
  const hits = new Map()
  const flakySeen = new Set()
  const sockets = new Set()
  const server = http.createServer((req, res) => {
    hits.set(req.url, (hits.get(req.url) ?? 0) + 1)
    const [, mode, name] = req.url.split('/')
    const body = files[name]
    if (!body || mode === 'missing') {
      res.writeHead(404).end('not found')
      return
    }
    switch (mode) {
      case 'good':
        res.writeHead(200, { 'content-length': body.length }).end(body)
        return
      case 'redirect':
        res.writeHead(302, { location: `/good/${name}` }).end()
        return
      case 'wrong': {
        const wrong = Buffer.from(body)
        wrong[wrong.length - 1] ^= 0xff
        res.writeHead(200, { 'content-length': wrong.length }).end(wrong)
        return
      }
      case 'truncated':
        res.writeHead(200, { 'content-length': body.length })
        res.write(body.subarray(0, Math.floor(body.length / 2)), () => res.socket.destroy())
        return
      case 'slow':
        res.writeHead(200, { 'content-length': body.length })
        res.write(body.subarray(0, 10)) // then nothing, ever
        return
      case 'flaky':
        if (!flakySeen.has(name)) {
          flakySeen.add(name)
          res.writeHead(500).end('try again')
          return
        }
        res.writeHead(200, { 'content-length': body.length }).end(body)
        return
      default:
        res.writeHead(404).end()
    }
  })
  server.on('connection', (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const base = `http://127.0.0.1:${server.address().port}`
  return {
    url: (mode) => `${base}/${mode}/`,
    hits,
    close: () => new Promise((resolve) => {
      for (const s of sockets) s.destroy()
      server.close(resolve)
    })
  }
}
