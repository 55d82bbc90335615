// binding.gyp builds the same sources with the same LibTorch finder, and that build loads.
import t from 'tap'
import { mkdtempSync, cpSync, symlinkSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { run, node, root } from './helpers/run.mjs'
import { nodeGypNodedir } from './helpers/nodedir.mjs'

const scratch = mkdtempSync(join(tmpdir(), 'siamese-gyp-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))

t.test('npx node-gyp rebuild builds an addon that loads and answers', async (t) => {
  // A copy, so that node-gyp's build/ does not replace the cmake-js one.
  for (const entry of ['native', 'binding.gyp', 'package.json', 'scripts/find-libtorch.js']) {
    cpSync(join(root, entry), join(scratch, entry), { recursive: true })
  }
  symlinkSync(join(root, 'node_modules'), join(scratch, 'node_modules'))
  const nodedir = nodeGypNodedir()
  const args = [join(root, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'), 'rebuild', '-j', '2',
    ...(nodedir ? [`--nodedir=${nodedir}`] : [])]
  // Unoptimised (gyp's Makefiles put CXXFLAGS after its own -O3): this test is about the gyp file
  // building the sources and the result loading; the optimised build, warnings checked at -O3, is
  // the cmake-js one. It compiles in about 40% less time.
  const build = run(process.execPath, args, { cwd: scratch, env: { CXXFLAGS: '-O0' } })
  t.equal(build.status, 0, build.stderr.slice(-4000))
  t.notMatch(build.stdout + build.stderr, /warning:/, 'no compiler warnings')

  const addon = join(scratch, 'build', 'Release', 'siamese_torch.node')
  const probe = node(['-e', "console.log(JSON.stringify(require('siamese-torch').version()))"],
    { env: { SIAMESE_TORCH_ADDON: addon } })
  t.equal(probe.status, 0, probe.stderr)
  const fromGyp = JSON.parse(probe.stdout)
  const fromCmake = JSON.parse(node(['-e', "console.log(JSON.stringify(require('siamese-torch').version()))"]).stdout)
  t.same(fromGyp, fromCmake, 'both builds report the same LibTorch')
})
