#include "data.h"

#include <cstring>

#include "../core/idx.h"
#include "../core/random.h"
#include "../core/sampling.h"
#include "convert.h"
#include "errors.h"
#include "worker.h"

namespace siamese::addon {

namespace {

// readIdx(imagesPath, labelsPath, numClasses) -> Promise<{ images: Buffer, labels: Buffer,
// count, width, height }>. numClasses 0: labels are only checked against each other's count.
Napi::Value ReadIdx(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    std::string imagesPath = stringArg(info, 0);
    std::string labelsPath = stringArg(info, 1);
    const int numClasses = static_cast<int>(numberArg(info, 2));
    return PromiseWorker<core::IdxSplit>::Start(
        env, [imagesPath, labelsPath, numClasses]() { return core::readIdxSplit(imagesPath, labelsPath, numClasses); },
        [](Napi::Env env, core::IdxSplit& split) -> Napi::Value {
          Napi::Object out = Napi::Object::New(env);
          // Copied, not external: Electron's V8 sandbox forbids buffers that point outside it.
          out.Set("images", Napi::Buffer<uint8_t>::Copy(env, split.images.pixels.data(), split.images.pixels.size()));
          out.Set("labels", Napi::Buffer<uint8_t>::Copy(env, split.labels.labels.data(), split.labels.labels.size()));
          out.Set("count", split.images.count);
          out.Set("width", split.images.cols);
          out.Set("height", split.images.rows);
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
