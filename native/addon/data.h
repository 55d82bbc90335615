// Data entry points: IDX files and pair/triplet sampling.
#pragma once

#include <napi.h>

#include "../core/augment.h"

namespace siamese::addon {

// lib/'s NativeAugment object as core::AugmentConfig (checked again by the core).
core::AugmentConfig readAugment(const Napi::Object& o);

void registerData(Napi::Env env, Napi::Object exports);

}  // namespace siamese::addon
