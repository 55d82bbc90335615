// What npm publishes installs and builds in an empty project, and imports from ESM and CJS.
import t from 'tap'
import { cpSync, mkdtempSync, rmSync, writeFileSync, readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { run, node, root } from './helpers/run.mjs'

const scratch = mkdtempSync(join(tmpdir(), 'siamese-pack-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))
const npm = (args, cwd) => run('npm', args, { cwd, env: { npm_config_update_notifier: 'false' } })

// What a user needs, and only that: the compiled package with its embedded digits, the native
// sources and the two scripts that build them (no tests, fuzzers or benchmark), the docs and
// examples the README points to.
function expectedFiles () {
  const tracked = (...paths) => run('git', ['ls-files', ...paths]).stdout.trim().split('\n').filter(Boolean)
  const built = (dir) => readdirSync(join(root, dir), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile()).map((e) => relative(root, join(e.parentPath ?? e.path, e.name)))
  return [
    'package.json', 'README.md', 'LICENSE', 'CMakeLists.txt', 'binding.gyp', 'scripts/find-libtorch.js', 'scripts/install.js',
    ...tracked('native/core', 'native/addon', 'native/sources.txt', 'examples', 'docs/*.md'),
    ...built('dist')
  ].sort()
}

t.test('npm pack ships exactly what an installer and a reader need', async (t) => {
  const r = npm(['pack', '--json', '--pack-destination', scratch], root)
  t.equal(r.status, 0, r.stderr)
  const [packed] = JSON.parse(r.stdout)
  const files = packed.files.map((f) => f.path).sort()
  t.same(files, expectedFiles())
  t.notOk(files.some((f) => /^(test|build|node_modules|\.ci)\/|^native\/(test|fuzz|bench)\//.test(f)), 'no tests, fuzzers, benchmarks, builds or CI')
  for (const needed of ['native/addon/addon.cc', 'native/core/trainer.cc', 'dist/index.d.mts', 'dist/cli.js',
    'dist/data/mnist-embedded/train-images-idx3-ubyte.gz', 'examples/quickstart.mjs', 'docs/api.md']) {
    t.ok(files.includes(needed), `ships ${needed}`)
  }
})

t.test('npm install of the tarball builds the addon; ESM and CJS both load it', async (t) => {
  const tarball = readdirSync(scratch).find((f) => f.endsWith('.tgz'))
  t.ok(tarball, 'npm pack wrote a tarball')
  const app = join(scratch, 'app')
  run('mkdir', [app])
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }))
  // better-sqlite3 compiles SQLite from source (a minute here) where its prebuilt binaries cannot
  // be downloaded. The build this test is about is the tarball's own, so the app starts with the
  // copy this checkout built, which npm keeps as it satisfies the dependency.
  for (const dep of ['better-sqlite3', 'bindings', 'file-uri-to-path']) {
    cpSync(join(root, 'node_modules', dep), join(app, 'node_modules', dep), { recursive: true })
  }
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
