#!/usr/bin/env bash
# Run on the GPU machine (see prepare.sh), in one call: builds the addon against the CUDA LibTorch
# of `python3 -c 'import torch; print(torch.utils.cmake_prefix_path)'`, runs the CUDA test suite
# (test/gpu/cuda.mjs), the GPU benchmark against PyTorch (scripts/gpu/bench.mjs) and concurrent
# predicts batched and not (scripts/bench/batching.mjs), and writes logs and JSON to $OUT.
#
# Dry run on a machine without a GPU (SIAMESE_TORCH_GPU_DRY_RUN=1): the same steps with the
# CPU LibTorch and device 'cpu', up to where a GPU is needed; results go to $OUT or /tmp/gpu-out.
set -uo pipefail
cd "$(dirname "$0")/../.."
dry=${SIAMESE_TORCH_GPU_DRY_RUN:-0}
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
log=$OUT/run.log
exec > >(tee -a "$log") 2>&1
step() { echo "== $(date +%T) $*"; }

step "machine"
nproc; free -g | head -2; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null || echo "no nvidia-smi"

step "node"
if command -v node >/dev/null && [[ $dry == 1 ]]; then
  node_bin=$(command -v node)
else
  mkdir -p /tmp/node/bin
  xz -dc build/gpu-carry/node.xz >/tmp/node/bin/node && chmod +x /tmp/node/bin/node
  node_bin=/tmp/node/bin/node
fi
export PATH=$(dirname "$node_bin"):$PATH
node -v || exit 1

step "LibTorch"
python=${SIAMESE_TORCH_PYTHON:-python3}
[[ $dry == 1 && -x /usr/bin/python3 ]] && python=/usr/bin/python3
export SIAMESE_TORCH_PYTHON=$python
node scripts/find-libtorch.js --json | tee "$OUT/libtorch.json" || exit 1

step "build the addon (CMake, no cmake-js: the headers come from node-api-headers)"
zlib=()
if [[ ! -f /usr/include/zlib.h ]]; then
  zlib=(-DZLIB_INCLUDE_DIR="$PWD/build/gpu-carry/include" -DZLIB_LIBRARY="$(ldconfig -p | awk '/libz\.so\.1 /{print $NF; exit}')")
fi
build=build/gpu
cmake -S . -B $build -G "$(command -v ninja >/dev/null && echo Ninja || echo 'Unix Makefiles')" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_JS_VERSION=gpu-script -DNODE_EXECUTABLE="$node_bin" \
  -DCMAKE_JS_INC="$PWD/node_modules/node-api-headers/include" -DSIAMESE_TORCH_CORE_BENCH=ON "${zlib[@]}" || exit 1
cmake --build $build --parallel "$(nproc)" 2>&1 | tee "$OUT/build.log" | grep -E "warning|error|Linking" || true
[[ -f $build/siamese_torch.node ]] || { echo "the build failed"; exit 1; }
export SIAMESE_TORCH_ADDON=$PWD/$build/siamese_torch.node
node -e "const v = require('./dist/index.js').version(); console.log(JSON.stringify(v)); if (!v.cuda && process.env.SIAMESE_TORCH_GPU_DRY_RUN !== '1') process.exit(1)" \
  | tee "$OUT/version.json" || { echo "version().cuda is false: no GPU seen"; exit 1; }

step "CUDA test suite"
device=cuda
[[ $dry == 1 ]] && device=cpu
SIAMESE_TORCH_TEST_DEVICE=$device node --test --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$OUT/gpu-tests.tap" test/gpu/cuda.mjs
tests=$?

step "benchmark against PyTorch on the same GPU"
SIAMESE_TORCH_BENCH_PYTHON=$python SIAMESE_TORCH_BENCH_DEVICE=$device node scripts/gpu/bench.mjs "$OUT"
bench=$?

step "concurrent predicts on the device (scripts/bench/batching.mjs): batched against unbatched"
node scripts/bench/batching.mjs --device $device --calls 3000 --threads "$(nproc)" &&
  cp $(ls -t scripts/bench/results/*-batching.* | head -2) "$OUT/"
batching=$?
step "done: tests exit $tests, bench exit $bench, batching exit $batching"
exit $((tests || bench || batching))
