// Data entry points: IDX files and pair/triplet sampling.
#pragma once

#include <napi.h>

namespace siamese::addon {

void registerData(Napi::Env env, Napi::Object exports);

}  // namespace siamese::addon
