#include "data.h"

#include <cstring>

#include "../core/idx.h"
#include "../core/random.h"
#include "../core/sampling.h"
#include "convert.h"
#include "errors.h"
#include "pixels.h"
#include "worker.h"

namespace siamese::addon {

namespace {

// One IDX split as read on libuv's pool: the pixels already in the tensor they will be trained on.
struct IdxRead {
  torch::Tensor images;  // uint8 [count, rows, cols, 1]
  std::vector<uint8_t> labels;
};

// The pixels the reader inflated, as a tensor over the same memory: no copy, and its pages were
// touched where they were written (off the main thread), so the first batch reads warm memory.
torch::Tensor adoptPixels(core::IdxImages&& images) {
  auto* held = new std::vector<uint8_t>(std::move(images.pixels));
  return torch::from_blob(
      held->data(), {int64_t{images.count}, int64_t{images.rows}, int64_t{images.cols}, 1},
      [held](void*) { delete held; }, torch::kUInt8);
}

// readIdx(imagesPath, labelsPath, numClasses) -> Promise<{ images: NativePixels, labels: Buffer,
// count, width, height }>. numClasses 0: labels are only checked against each other's count. The
// pixels stay native (a frozen NativePixels store, read by training and inference where they are);
// JavaScript gets a copy only of what it reads (Electron's V8 sandbox forbids buffers that point
// outside it, so nothing is handed over as an external buffer).
Napi::Value ReadIdx(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    std::string imagesPath = stringArg(info, 0);
    std::string labelsPath = stringArg(info, 1);
    const int numClasses = static_cast<int>(numberArg(info, 2));
    return PromiseWorker<IdxRead>::Start(
        env,
        [imagesPath, labelsPath, numClasses]() {
          core::IdxSplit split = core::readIdxSplit(imagesPath, labelsPath, numClasses);
          return IdxRead{adoptPixels(std::move(split.images)), std::move(split.labels.labels)};
        },
        [](Napi::Env env, IdxRead& read) -> Napi::Value {
          Napi::Object out = Napi::Object::New(env);
          out.Set("count", read.images.size(0));
          out.Set("width", read.images.size(2));
          out.Set("height", read.images.size(1));
          out.Set("labels", Napi::Buffer<uint8_t>::Copy(env, read.labels.data(), read.labels.size()));
          out.Set("images", PixelsWrap::wrap(env, std::move(read.images)));
          return out;
        });
  });
}

core::ClassIndex classIndexArg(const Napi::CallbackInfo& info) {
  Napi::Int32Array labels = int32ArrayArg(info, 0);
  return core::ClassIndex(labels.Data(), labels.ElementLength(), static_cast<int>(numberArg(info, 1)));
}

uint64_t seedArg(const Napi::CallbackInfo& info, size_t i) { return static_cast<uint64_t>(numberArg(info, i)); }

Napi::Object tripletsToJs(Napi::Env env, const core::Triplets& t) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("anchor", toInt32Array(env, t.anchor));
  out.Set("positive", toInt32Array(env, t.positive));
  out.Set("negative", toInt32Array(env, t.negative));
  return out;
}

// sampleTriplets(labels, numClasses, scheme, seed, epoch) -> { anchor, positive, negative }.
// Synchronous: linear in the set's size (a few milliseconds for 60,000 images).
Napi::Value SampleTriplets(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const core::ClassIndex index = classIndexArg(info);
    const std::string scheme = stringArg(info, 2);
    const uint64_t seed = seedArg(info, 3);
    const uint64_t epoch = seedArg(info, 4);
    if (scheme == "reference") return tripletsToJs(env, core::referenceTriplets(index, seed));
    if (scheme == "balanced") return tripletsToJs(env, core::balancedTriplets(index, seed, epoch));
    throw argError(env, "scheme 'reference' or 'balanced'");
  });
}

// classBalancedBatches(labels, numClasses, classesPerBatch, imagesPerClass, seed, epoch) -> Int32Array
Napi::Value ClassBalancedBatches(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    const core::ClassIndex index = classIndexArg(info);
    return toInt32Array(
        env, core::classBalancedBatches(index, static_cast<int>(numberArg(info, 2)),
                                        static_cast<int>(numberArg(info, 3)), seedArg(info, 4), seedArg(info, 5)));
  });
}

// augmentImages(images, count, width, height, channels, augment, seed) -> Uint8Array: augmented
// copies of uint8 [count, height, width, channels] images, drawn as the trainer draws a batch.
// Synchronous: for the command line's sheet of examples, a few dozen small images.
Napi::Value AugmentImages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    if (info.Length() < 7 || !info[0].IsTypedArray() || !info[5].IsObject())
      throw argError(env, "images and augment options");
    Napi::Uint8Array pixels = info[0].As<Napi::Uint8Array>();
    const auto count = static_cast<int64_t>(numberArg(info, 1));
    const auto width = static_cast<int64_t>(numberArg(info, 2));
    const auto height = static_cast<int64_t>(numberArg(info, 3));
    const auto channels = static_cast<int64_t>(numberArg(info, 4));
    const core::AugmentConfig config = readAugment(info[5].As<Napi::Object>());
    const auto seed = static_cast<uint64_t>(numberArg(info, 6));
    if (count < 1 || width < 1 || height < 1 || (channels != 1 && channels != 3) ||
        static_cast<int64_t>(pixels.ByteLength()) != count * width * height * channels) {
      throw argError(env, "images of count x height x width x channels bytes");
    }
    core::checkAugmentConfig(config);
    const torch::Tensor in = torch::from_blob(pixels.Data(), {count, height, width, channels}, torch::kUInt8)
                                 .permute({0, 3, 1, 2})
                                 .to(torch::kFloat);
    core::Rng rng(seed);
    const torch::Tensor out =
        core::augmentBatch(in, config, rng).round().clamp(0, 255).to(torch::kUInt8).permute({0, 2, 3, 1}).contiguous();
    Napi::Uint8Array result = Napi::Uint8Array::New(env, static_cast<size_t>(out.numel()));
    std::memcpy(result.Data(), out.data_ptr(), static_cast<size_t>(out.numel()));
    return result;
  });
}

}  // namespace

core::AugmentConfig readAugment(const Napi::Object& o) {
  const auto n = [&](const char* key) { return o.Get(key).As<Napi::Number>().DoubleValue(); };
  core::AugmentConfig c;
  c.cropScaleMin = n("cropScaleMin");
  c.cropScaleMax = n("cropScaleMax");
  c.ratioMin = n("ratioMin");
  c.ratioMax = n("ratioMax");
  c.flip = o.Get("flip").ToBoolean();
  c.rotate = n("rotate");
  c.translate = n("translate");
  c.scaleMin = n("scaleMin");
  c.scaleMax = n("scaleMax");
  c.shear = n("shear");
  c.brightness = n("brightness");
  c.contrast = n("contrast");
  return c;
}

void registerData(Napi::Env env, Napi::Object exports) {
  exports.Set("augmentImages", Napi::Function::New(env, AugmentImages, "augmentImages"));
  exports.Set("readIdx", Napi::Function::New(env, ReadIdx, "readIdx"));
  exports.Set("sampleTriplets", Napi::Function::New(env, SampleTriplets, "sampleTriplets"));
  exports.Set("classBalancedBatches", Napi::Function::New(env, ClassBalancedBatches, "classBalancedBatches"));
}

}  // namespace siamese::addon
