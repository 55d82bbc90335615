// What npm publishes installs and builds in an empty project, and imports from ESM and CJS.
import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync, readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { run, node, root } from './helpers/run.mjs'

const scratch = mkdtempSync(join(tmpdir(), 'siamese-pack-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))
const npm = (args, cwd) => run('npm', args, { cwd, env: { npm_config_update_notifier: 'false' } })

t.test('npm pack ships the sources an installer needs, and nothing else', async (t) => {
  const r = npm(['pack', '--json', '--pack-destination', scratch], root)
  t.equal(r.status, 0, r.stderr)
  const [packed] = JSON.parse(r.stdout)
  const files = packed.files.map((f) => f.path)
  for (const needed of ['package.json', 'CMakeLists.txt', 'binding.gyp', 'scripts/find-libtorch.js',
    'scripts/install.js', 'native/sources.txt', 'native/addon/addon.cc', 'native/core/torch_info.cc',
    'dist/index.js', 'dist/index.mjs', 'dist/index.d.ts', 'dist/index.d.mts', 'dist/cli.js', 'README.md',
    'dist/data/mnist-embedded/train-images-idx3-ubyte.gz', 'dist/data/mnist-embedded/t10k-labels-idx1-ubyte.gz']) {
    t.ok(files.includes(needed), `ships ${needed}`)
  }
  t.notOk(files.some((f) => /^(test|build|node_modules|\.ci)\//.test(f)), 'no tests, builds or CI files')
})

t.test('npm install of the tarball builds the addon; ESM and CJS both load it', async (t) => {
  const tarball = readdirSync(scratch).find((f) => f.endsWith('.tgz'))
  t.ok(tarball, 'npm pack wrote a tarball')
  const app = join(scratch, 'app')
  run('mkdir', [app])
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }))
  const install = npm(['install', '--no-audit', '--no-fund', '--prefer-offline', '--foreground-scripts',
    join(scratch, tarball)], app)
  t.equal(install.status, 0, (install.stdout + install.stderr).slice(-4000))
  t.match(install.stdout, /siamese-torch: building the addon against LibTorch/, 'the build says which LibTorch')

  const esm = node(['-e', "import('siamese-torch').then(m => console.log(JSON.stringify(m.version())))"], { cwd: app })
  t.equal(esm.status, 0, esm.stderr)
  const cjs = node(['-e', "console.log(JSON.stringify(require('siamese-torch').version()))"], { cwd: app })
  t.equal(cjs.status, 0, cjs.stderr)
  t.same(JSON.parse(esm.stdout), JSON.parse(cjs.stdout))
  t.equal(JSON.parse(esm.stdout).siameseTorch, JSON.parse(npm(['pkg', 'get', 'version'], root).stdout))

  const bin = run(join(app, 'node_modules', '.bin', 'siamese-torch'), ['info'], { cwd: app })
  t.equal(bin.status, 0, bin.stderr)
  t.match(bin.stdout, /^siamese-torch\s+\d+\.\d+\.\d+/)
})
