// Per-environment state. The addon is context-aware: each main thread, worker_thread or Electron
// context that loads it gets its own Instance, freed by Node when that environment exits.
#pragma once

#include <set>

#include <napi.h>

namespace siamese::addon {

struct TrainingJob;
struct Instance;

// Stops and joins every training thread of an environment that is exiting (model.cc).
void stopTrainingJobs(Instance& instance);

struct Instance {
  Napi::FunctionReference errorClass;   // SiameseTorchError, registered once by lib/ at load
  Napi::FunctionReference modelClass;   // the addon's model class
  Napi::FunctionReference pixelsClass;  // NativePixels (pixels.h)
  Napi::FunctionReference indexClass;   // NativeIndex (gallery.h)
  std::set<TrainingJob*> trainingJobs;  // runs in progress, for teardown

  ~Instance() { stopTrainingJobs(*this); }

  static Instance* get(Napi::Env env) { return env.GetInstanceData<Instance>(); }
};

}  // namespace siamese::addon
