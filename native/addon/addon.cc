// Entry points of the addon. The addon converts JavaScript values to the plain C++ values of
// native/core and back, and schedules core's work off the main thread; math and file formats are
// all in native/core.
#include <napi.h>

#include <sstream>
#include <string>

#include "../core/cpu_allocator.h"
#include "../core/distributed.h"
#include "../core/torch_info.h"
#include "data.h"
#include "errors.h"
#include "gallery.h"
#include "instance.h"
#include "model.h"
#include "pixels.h"

// Electron 21+ runs V8 with its memory cage, where an ArrayBuffer may not point outside V8's
// memory. With this defined, node-addon-api leaves out every external-buffer API, so such a
// buffer cannot be made here by mistake: results are always copied into JavaScript memory. Both
// builds (CMakeLists.txt, binding.gyp) define it.
#ifndef NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED
#error "NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED must be defined (Electron's V8 memory cage)"
#endif

#ifndef SIAMESE_TORCH_LIBTORCH_SOURCE
#error "SIAMESE_TORCH_LIBTORCH_SOURCE must name where the build found LibTorch"
#endif
#define SIAMESE_STRINGIFY_(x) #x
#define SIAMESE_STRINGIFY(x) SIAMESE_STRINGIFY_(x)

namespace siamese::addon {
namespace {

// init(ErrorClass): lib/ hands over the error class that every rejection is an instance of.
Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsFunction()) {
    throw Napi::TypeError::New(env, "init expects the SiameseTorchError class");
  }
  Instance::get(env)->errorClass = Napi::Persistent(info[0].As<Napi::Function>());
  return env.Undefined();
}

Napi::Value Version(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const core::TorchInfo torch = core::torchInfo();
    Napi::Object out = Napi::Object::New(env);
    out.Set("libtorch", torch.libtorchVersion);
    out.Set("libtorchSource", SIAMESE_STRINGIFY(SIAMESE_TORCH_LIBTORCH_SOURCE));
    out.Set("libtorchLibrary", torch.libtorchLibrary);
    out.Set("cudaBuild", torch.cudaBuild);
    out.Set("cuda", torch.cudaAvailable);
    Napi::Array devices = Napi::Array::New(env, torch.cudaDevices.size());
    for (size_t i = 0; i < torch.cudaDevices.size(); ++i) {
      const core::CudaDevice& d = torch.cudaDevices[i];
      Napi::Object device = Napi::Object::New(env);
      device.Set("index", d.index);
      device.Set("name", d.name);
      device.Set("totalMemory", static_cast<double>(d.totalMemoryBytes));
      devices.Set(static_cast<uint32_t>(i), device);
    }
    out.Set("cudaDevices", devices);
    out.Set("cpus", torch.cpus);
    out.Set("threads", torch.threads);
    out.Set("threadsBasis", torch.threadsBasis);
    out.Set("bf16Cpu", torch.bf16Cpu);
    Napi::Array backends = Napi::Array::New(env);
    std::istringstream names(core::distributedBackends());
    for (std::string name; names >> name;) backends.Set(backends.Length(), name);
    out.Set("distributed", backends);
    return out;
  });
}

// cpuMemory(): the caching CPU allocator's counters (tests and benchmarks read them).
Napi::Value CpuMemory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const core::CpuAllocatorStats s = core::cpuAllocatorStats();
  Napi::Object out = Napi::Object::New(env);
  out.Set("cachingAllocator", s.installed);
  out.Set("liveBytes", static_cast<double>(s.liveBytes));
  out.Set("idleBytes", static_cast<double>(s.idleBytes));
  out.Set("highWaterBytes", static_cast<double>(s.highWaterBytes));
  out.Set("hits", static_cast<double>(s.hits));
  out.Set("misses", static_cast<double>(s.misses));
  return out;
}

}  // namespace
}  // namespace siamese::addon

static Napi::Object RegisterModule(Napi::Env env, Napi::Object exports) {
  using namespace siamese::addon;
  siamese::core::installCachingCpuAllocator();  // once per process
  env.SetInstanceData(new Instance());
  exports.Set("init", Napi::Function::New(env, Init, "init"));
  exports.Set("version", Napi::Function::New(env, Version, "version"));
  exports.Set("cpuMemory", Napi::Function::New(env, CpuMemory, "cpuMemory"));
  registerData(env, exports);
  registerModel(env, exports);
  registerPixels(env, exports);
  registerGallery(env, exports);
  return exports;
}

NODE_API_MODULE(siamese_torch, RegisterModule)
