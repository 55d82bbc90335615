// The model object of the addon and the training job that runs on its own thread.
#pragma once

#include <napi.h>

namespace siamese::addon {

void registerModel(Napi::Env env, Napi::Object exports);

}  // namespace siamese::addon
