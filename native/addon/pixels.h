// A labelled set's pixels held natively: uint8 [N, H, W, C] in a tensor LibTorch owns, written once
// (image by image as a folder is decoded, or whole by a native reader: IDX files), then read by
// training, evaluation and inference without a copy (the tensor is shared). JavaScript sees it
// through lib/datasets/native-pixels.ts.
#pragma once

#include <napi.h>
#include <torch/torch.h>

namespace siamese::addon {

class PixelsWrap : public Napi::ObjectWrap<PixelsWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  // The store a JavaScript value is, or nullptr when it is not one.
  static PixelsWrap* from(Napi::Env env, const Napi::Value& value);

  // A frozen store over pixels already filled natively (uint8 [N, H, W, C], C 1 or 3, contiguous),
  // shared, not copied. Main thread only.
  static Napi::Object wrap(Napi::Env env, torch::Tensor pixels);

  // new NativePixels(count, height, width, channels); from wrap(), one External of the tensor.
  explicit PixelsWrap(const Napi::CallbackInfo& info);

  // The pixels, shared. Written only before freeze(), on the main thread; read anywhere after.
  const torch::Tensor& tensor() const { return pixels_; }
  bool frozen() const { return frozen_; }

 private:
  Napi::Value Set(const Napi::CallbackInfo& info);
  Napi::Value Read(const Napi::CallbackInfo& info);
  Napi::Value Freeze(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  Napi::Value Select(const Napi::CallbackInfo& info);

  torch::Tensor pixels_;
  bool frozen_ = false;
};

void registerPixels(Napi::Env env, Napi::Object exports);

}  // namespace siamese::addon
