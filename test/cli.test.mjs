import t from 'tap'
import { node } from './helpers/run.mjs'
import { version } from 'siamese-torch'

const cli = (args, options) => node(['dist/cli.js', ...args], options)

t.test('siamese-torch info prints the versions', async (t) => {
  const v = version()
  const r = cli(['info'])
  t.equal(r.status, 0, r.stderr)
  t.match(r.stdout, new RegExp(`siamese-torch\\s+${v.siameseTorch}`))
  t.match(r.stdout, new RegExp(`LibTorch\\s+${v.libtorch.replace(/\./g, '\\.')} \\((CPU|CUDA) build, found via ${v.libtorchSource}\\)`))
  t.match(r.stdout, /threads\s+\d+/)
  t.equal(r.stderr, '')
})

t.test('siamese-torch info --json prints version() as JSON and nothing else', async (t) => {
  const r = cli(['info', '--json'])
  t.equal(r.status, 0, r.stderr)
  t.same(JSON.parse(r.stdout), version())
})

t.test('--help and --version', async (t) => {
  const help = cli(['--help'])
  t.equal(help.status, 0)
  t.match(help.stdout, /Usage: siamese-torch <command>/)
  t.match(help.stdout, /Example:\n {2}siamese-torch info/)
  const v = cli(['--version'])
  t.equal(v.status, 0)
  t.equal(v.stdout.trim(), version().siameseTorch)
})

t.test('usage errors exit 2 with one line', async (t) => {
  for (const args of [['bogus'], ['info', '--bogus'], ['info', 'extra'], []]) {
    const r = cli(args)
    t.equal(r.status, 2, `siamese-torch ${args.join(' ')}`)
    t.equal(r.stdout, '')
    t.ok(r.stderr.length > 0)
  }
  t.equal(cli(['bogus']).stderr, "siamese-torch: unknown command 'bogus' (try: siamese-torch --help)\n")
})

t.test('a runtime failure exits 1 with the code and no stack', async (t) => {
  const r = cli(['info'], { env: { SIAMESE_TORCH_ADDON: '/nonexistent/siamese_torch.node' } })
  t.equal(r.status, 1)
  t.match(r.stderr, /^siamese-torch: ERR_ADDON_LOAD: The siamese-torch native addon could not be loaded/)
  t.notMatch(r.stderr, /\n\s+at /, 'no stack trace')
})
