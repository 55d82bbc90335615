// Per-environment state. The addon is context-aware: each main thread, worker_thread or Electron
// context that loads it gets its own Instance, freed by Node when that environment exits.
#pragma once

#include <napi.h>

namespace siamese::addon {

struct Instance {
  Napi::FunctionReference errorClass;  // SiameseTorchError, registered once by lib/ at load

  static Instance* get(Napi::Env env) { return env.GetInstanceData<Instance>(); }
};

}  // namespace siamese::addon
