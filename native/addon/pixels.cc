#include "pixels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <utility>
#include <vector>

#include "convert.h"
#include "errors.h"
#include "instance.h"

namespace siamese::addon {

namespace {
// Tags the External that wrap() hands the constructor, so that no other External is taken for one.
constexpr napi_type_tag kPixelsHandle = {0x5a1e5e70c4a1d1e5ULL, 0x9f3b2c7d11e0a4b8ULL};
}  // namespace

Napi::Function PixelsWrap::Define(Napi::Env env) {
  return DefineClass(env, "NativePixels",
                     {InstanceMethod("set", &PixelsWrap::Set), InstanceMethod("read", &PixelsWrap::Read),
                      InstanceMethod("freeze", &PixelsWrap::Freeze), InstanceMethod("stats", &PixelsWrap::Stats),
                      InstanceMethod("select", &PixelsWrap::Select)});
}

PixelsWrap* PixelsWrap::from(Napi::Env env, const Napi::Value& value) {
  Instance* instance = Instance::get(env);
  if (!value.IsObject() || instance->pixelsClass.IsEmpty()) return nullptr;
  if (!value.As<Napi::Object>().InstanceOf(instance->pixelsClass.Value())) return nullptr;
  return Unwrap(value.As<Napi::Object>());
}

Napi::Object PixelsWrap::wrap(Napi::Env env, torch::Tensor pixels) {
  if (pixels.dim() != 4 || pixels.scalar_type() != torch::kUInt8 || !pixels.is_contiguous() ||
      (pixels.size(3) != 1 && pixels.size(3) != 3) || pixels.numel() == 0) {
    throw std::logic_error("NativePixels: pixels must be uint8 [N, H, W, 1 or 3], contiguous, not empty");
  }
  // An External is a handle, not a buffer: nothing of the pixels is exposed to JavaScript.
  auto handle = Napi::External<torch::Tensor>::New(env, &pixels);
  handle.TypeTag(&kPixelsHandle);
  return Instance::get(env)->pixelsClass.New({handle});
}

PixelsWrap::PixelsWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PixelsWrap>(info) {
  Napi::Env env = info.Env();
  if (info.Length() == 1 && info[0].IsExternal()) {
    // From wrap() only: the External is the addon's own, tagged, and points at its caller's tensor.
    auto handle = info[0].As<Napi::External<torch::Tensor>>();
    if (!handle.CheckTypeTag(&kPixelsHandle)) throw argError(env, "count, height, width and channels");
    pixels_ = std::move(*handle.Data());
    frozen_ = true;
    return;
  }
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

// select(indices: Int32Array) -> NativePixels: a new frozen store of those images, in that order
// (copied natively, one pass: no image goes through JavaScript).
Napi::Value PixelsWrap::Select(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    throw argError(env, "an Int32Array of image indices");
  }
  const Napi::Int32Array indices = info[0].As<Napi::Int32Array>();
  const int64_t n = pixels_.size(0);
  if (indices.ElementLength() == 0) throw argError(env, "at least one image index");
  for (size_t i = 0; i < indices.ElementLength(); ++i) {
    if (indices[i] < 0 || indices[i] >= n) throw argError(env, "image indices within the store");
  }
  try {
    const auto imageBytes = static_cast<size_t>(pixels_.numel() / n);
    std::vector<int64_t> sizes = pixels_.sizes().vec();
    sizes[0] = static_cast<int64_t>(indices.ElementLength());
    torch::Tensor out = torch::empty(sizes, torch::kUInt8);
    const auto* from = static_cast<const uint8_t*>(pixels_.data_ptr());
    auto* to = static_cast<uint8_t*>(out.data_ptr());
    for (size_t i = 0; i < indices.ElementLength(); ++i) {
      std::memcpy(to + i * imageBytes, from + static_cast<size_t>(indices[i]) * imageBytes, imageBytes);
    }
    return wrap(env, std::move(out));
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    throw makeError(env, describeCurrentException());
  }
}

void registerPixels(Napi::Env env, Napi::Object exports) {
  Napi::Function cls = PixelsWrap::Define(env);
  Instance::get(env)->pixelsClass = Napi::Persistent(cls);
  exports.Set("NativePixels", cls);
}

}  // namespace siamese::addon
