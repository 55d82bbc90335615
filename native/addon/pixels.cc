#include "pixels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "convert.h"
#include "errors.h"
#include "instance.h"

namespace siamese::addon {

Napi::Function PixelsWrap::Define(Napi::Env env) {
  return DefineClass(env, "NativePixels",
                     {InstanceMethod("set", &PixelsWrap::Set), InstanceMethod("read", &PixelsWrap::Read),
                      InstanceMethod("freeze", &PixelsWrap::Freeze), InstanceMethod("stats", &PixelsWrap::Stats)});
}

PixelsWrap* PixelsWrap::from(Napi::Env env, const Napi::Value& value) {
  Instance* instance = Instance::get(env);
  if (!value.IsObject() || instance->pixelsClass.IsEmpty()) return nullptr;
  if (!value.As<Napi::Object>().InstanceOf(instance->pixelsClass.Value())) return nullptr;
  return Unwrap(value.As<Napi::Object>());
}

PixelsWrap::PixelsWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PixelsWrap>(info) {
  Napi::Env env = info.Env();
  std::vector<int64_t> sizes;
  for (size_t i = 0; i < 4; ++i) {
    const double v = numberArg(info, i);
    if (!(v >= 1 && v <= 1e12)) throw argError(env, "count, height, width and channels of at least 1");
    sizes.push_back(static_cast<int64_t>(v));
  }
  if (sizes[3] != 1 && sizes[3] != 3) throw argError(env, "1 or 3 channels");
  try {
    pixels_ = torch::empty(sizes, torch::kUInt8);
  } catch (...) {
    throw makeError(env, describeCurrentException());
  }
}

// set(index, pixels: Uint8Array of H * W * C): one image, copied in.
Napi::Value PixelsWrap::Set(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (frozen_) throw argError(env, "a store still being filled (it is frozen)");
  const double index = numberArg(info, 0);
  if (info.Length() < 2 || !info[1].IsTypedArray()) throw argError(env, "a Uint8Array of one image");
  const Napi::Uint8Array image = info[1].As<Napi::Uint8Array>();
  const auto imageBytes = static_cast<size_t>(pixels_.numel() / pixels_.size(0));
  if (!(index >= 0 && index < static_cast<double>(pixels_.size(0))) || image.ByteLength() != imageBytes) {
    throw argError(env, "an index within the store and one image of its size");
  }
  std::memcpy(static_cast<uint8_t*>(pixels_.data_ptr()) + static_cast<size_t>(index) * imageBytes, image.Data(),
              imageBytes);
  return env.Undefined();
}

// read(start, count) -> Uint8Array: a copy of images [start, start + count).
Napi::Value PixelsWrap::Read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const double start = numberArg(info, 0);
  const double count = numberArg(info, 1);
  const auto n = static_cast<double>(pixels_.size(0));
  if (!(start >= 0 && count >= 0 && start + count <= n)) throw argError(env, "images within the store");
  const auto imageBytes = static_cast<size_t>(pixels_.numel() / pixels_.size(0));
  Napi::Uint8Array out = Napi::Uint8Array::New(env, static_cast<size_t>(count) * imageBytes);
  if (out.ByteLength() > 0) {
    std::memcpy(out.Data(), static_cast<const uint8_t*>(pixels_.data_ptr()) + static_cast<size_t>(start) * imageBytes,
                out.ByteLength());
  }
  return out;
}

// freeze(): no more writes; from now on training threads may read the pixels.
Napi::Value PixelsWrap::Freeze(const Napi::CallbackInfo& info) {
  frozen_ = true;
  return info.Env().Undefined();
}

// stats() -> { mean: number[], std: number[] }: per channel, of pixel / 255 over every image (the
// population standard deviation; 1 for a channel that never varies). The same arithmetic as
// pixelStats in lib/datasets/arrays.ts, so the same numbers: whole-number sums (exact), then doubles.
Napi::Value PixelsWrap::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const auto channels = static_cast<size_t>(pixels_.size(3));
  const auto* data = static_cast<const uint8_t*>(pixels_.data_ptr());
  const auto values = static_cast<size_t>(pixels_.numel());
  std::vector<uint64_t> sums(channels, 0);
  std::vector<uint64_t> squares(channels, 0);
  for (size_t i = 0; i < values; ++i) {
    const uint64_t v = data[i];
    sums[i % channels] += v;
    squares[i % channels] += v * v;
  }
  const double n = static_cast<double>(values / channels);
  Napi::Array mean = Napi::Array::New(env, channels);
  Napi::Array std = Napi::Array::New(env, channels);
  for (size_t c = 0; c < channels; ++c) {
    const double m = static_cast<double>(sums[c]) / n;
    const double variance = std::max(0.0, static_cast<double>(squares[c]) / n - m * m);
    mean.Set(static_cast<uint32_t>(c), m / 255);
    std.Set(static_cast<uint32_t>(c), variance == 0 ? 1.0 : std::sqrt(variance) / 255);
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("mean", mean);
  out.Set("std", std);
  return out;
}

void registerPixels(Napi::Env env, Napi::Object exports) {
  Napi::Function cls = PixelsWrap::Define(env);
  Instance::get(env)->pixelsClass = Napi::Persistent(cls);
  exports.Set("NativePixels", cls);
}

}  // namespace siamese::addon
