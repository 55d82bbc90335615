"""What the PyTorch bench scripts (reference.py, towers.py, unseen.py) share: facts about this torch,
this CPU, the BLAS and the memory allocator the process really runs with, bf16 autocast, the
memory-format probe, and the result writer. Importing it runs nothing.

The BLAS and the allocator are chosen outside the process (scripts/bench/common.mjs sets
LD_LIBRARY_PATH and LD_PRELOAD or glibc's MALLOC_* variables); what was really loaded is read
back from /proc/self/maps, so a result never claims a library the process did not map.
"""
import contextlib
import copy
import json
import os
import resource
import time

import torch
import torch.nn.functional as F

# The environment variables that tune glibc's malloc or jemalloc, recorded with the allocator.
MALLOC_VARIABLES = ('MALLOC_ARENA_MAX', 'MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_', 'MALLOC_TOP_PAD_',
                    'MALLOC_MMAP_MAX_', 'GLIBC_TUNABLES', 'MALLOC_CONF')


# ---- this CPU and this torch ----

def cpu_flags():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('flags'):
                    return set(line.split(':', 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_capability():
    """ATen's CPU kernel level (torch.backends.cpu.get_cpu_capability on torch >= 2.0)."""
    try:
        import torch.backends.cpu as cpu_backend
        return cpu_backend.get_cpu_capability()
    except (ImportError, AttributeError):
        for line in torch.__config__.show().splitlines():
            if 'CPU capability usage' in line:
                return line.split(':', 1)[1].strip()
    return None


def bf16_report():
    """Whether bf16 autocast on CPU is available here: this torch can autocast to bf16, oneDNN is
    there, and the CPU computes in bf16 natively (avx512_bf16 or AMX; without them oneDNN emulates
    it, slowly, and a bf16 figure would say nothing)."""
    flags = cpu_flags()
    report = {
        'mkldnn_available': torch.backends.mkldnn.is_available(),
        'cpu_capability': cpu_capability(),
        'cpu_avx512_bf16': 'avx512_bf16' in flags,
        'cpu_amx_bf16': 'amx_bf16' in flags,
        'cpu_avx512bw': 'avx512bw' in flags,
    }
    supported = getattr(torch.ops.mkldnn, '_is_mkldnn_bf16_supported', None)
    try:
        report['mkldnn_bf16_supported'] = bool(supported()) if supported else None
    except Exception:  # noqa: BLE001 (older builds: not there)
        report['mkldnn_bf16_supported'] = None
    try:
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = F.conv2d(torch.randn(1, 3, 8, 8), torch.randn(4, 3, 3, 3))
        report['autocast_cpu_bf16'] = out.dtype == torch.bfloat16
    except Exception as e:  # noqa: BLE001
        report['autocast_cpu_bf16'] = False
        report['autocast_cpu_bf16_error'] = str(e)
    report['bf16_available'] = bool(report['autocast_cpu_bf16'] and report['mkldnn_available'] and
                                    (report['cpu_avx512_bf16'] or report['cpu_amx_bf16']))
    return report


def require_bf16():
    """The bf16 report, or SystemExit with the reason when bf16 autocast is not available here."""
    report = bf16_report()
    if not report['bf16_available']:
        why = []
        if not (report['cpu_avx512_bf16'] or report['cpu_amx_bf16']):
            why.append('the CPU has neither avx512_bf16 nor amx_bf16 (/proc/cpuinfo)')
        if not report['mkldnn_available']:
            why.append('this torch has no oneDNN (mkldnn)')
        if not report['autocast_cpu_bf16']:
            why.append('this torch cannot autocast to bf16 on the CPU')
        raise SystemExit(f'--precision bf16 refused: {"; ".join(why)}')
    return report


def autocast(bf16, device_type='cpu'):
    """torch.autocast to bf16 on the device type ('cpu' or 'cuda') when `bf16`, else nothing: the
    forward in bf16, the weights (and Adam's state) stay fp32, and callers compute the loss on
    .float() logits."""
    return torch.autocast(device_type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


# ---- the libraries this process really runs with ----

def mapped_libraries():
    """The shared objects mapped into this process (/proc/self/maps), in the order first seen."""
    seen = []
    try:
        with open('/proc/self/maps') as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 6 and '.so' in parts[5] and parts[5] not in seen:
                    seen.append(parts[5])
    except OSError:
        pass
    return seen


def blas_report(libraries=None):
    """Which BLAS (and LAPACK) is loaded: {'name', 'libraries'}."""
    libraries = mapped_libraries() if libraries is None else libraries
    mine = [p for p in libraries if any(k in os.path.basename(p) for k in ('blas', 'lapack', 'mkl_', 'blis'))]
    names = ' '.join(mine)
    if 'openblas' in names:
        name = 'OpenBLAS'
    elif 'mkl_' in names:
        name = 'MKL'
    elif 'blis' in names:
        name = 'BLIS'
    elif '/blas/libblas' in names:
        name = 'reference BLAS (netlib)'
    elif mine:
        name = 'unknown'
    else:
        name = 'none mapped'
    return {'name': name, 'libraries': mine}


def allocator_report(libraries=None):
    """The malloc in use: jemalloc or tcmalloc when mapped (LD_PRELOAD), else glibc's; with the
    tuning variables set."""
    libraries = mapped_libraries() if libraries is None else libraries
    names = ' '.join(os.path.basename(p) for p in libraries)
    name = 'jemalloc' if 'jemalloc' in names else 'tcmalloc' if 'tcmalloc' in names else 'glibc malloc'
    env = {k: os.environ[k] for k in MALLOC_VARIABLES if k in os.environ}
    if os.environ.get('LD_PRELOAD'):
        env['LD_PRELOAD'] = os.environ['LD_PRELOAD']
    return {'name': name, 'env': env}


def runtime_report():
    """BLAS, allocator and ATen's CPU kernel level of this process, for a result; with its CPU
    seconds and page faults so far (what a malloc changes shows in system time and minor faults,
    which a busy machine disturbs less than wall time)."""
    libraries = mapped_libraries()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {'blas': blas_report(libraries), 'allocator': allocator_report(libraries), 'cpuCapability': cpu_capability(),
            'rusage': {'userSeconds': usage.ru_utime, 'systemSeconds': usage.ru_stime,
                       'minorFaults': usage.ru_minflt, 'majorFaults': usage.ru_majflt}}


# ---- memory format ----

def to_format(model, channels_last):
    return model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def probe_memory_format(model, make_optimizer, step, steps=3):
    """Seconds per training step of a throw-away copy of `model` in each memory format, after one
    warm-up step; step(copy, optimizer, channels_last) runs one step. torch's random state is put
    back, so the real run draws what it would have drawn without the probe."""
    timings = {}
    rng_state = torch.get_rng_state()
    for name, cl in (('contiguous', False), ('channels_last', True)):
        m = to_format(copy.deepcopy(model), cl)
        m.train()
        opt = make_optimizer(m)
        step(m, opt, cl)
        started = time.perf_counter()
        for _ in range(steps):
            step(m, opt, cl)
        timings[name] = (time.perf_counter() - started) / steps
        del m, opt
    torch.set_rng_state(rng_state)
    return timings


# ---- output ----

def write_result(result, out):
    """Prints a run's result as one JSON line (the driver reads the last) and writes it to `out`, if given."""
    print(json.dumps(result), flush=True)
    if out:
        with open(out, 'w') as f:
            json.dump(result, f, indent=2)
