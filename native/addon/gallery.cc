#include "gallery.h"

#include <string>
#include <utility>
#include <vector>

#include "convert.h"
#include "errors.h"
#include "instance.h"
#include "worker.h"

namespace siamese::addon {

Napi::Function IndexWrap::Define(Napi::Env env) {
  return DefineClass(env, "NativeIndex",
                     {InstanceMethod("add", &IndexWrap::Add), InstanceMethod("remove", &IndexWrap::Remove),
                      InstanceMethod("size", &IndexWrap::Size)});
}

IndexWrap* IndexWrap::from(Napi::Env env, const Napi::Value& value) {
  Instance* instance = Instance::get(env);
  if (!value.IsObject() || instance->indexClass.IsEmpty()) return nullptr;
  if (!value.As<Napi::Object>().InstanceOf(instance->indexClass.Value())) return nullptr;
  return Unwrap(value.As<Napi::Object>());
}

IndexWrap::IndexWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<IndexWrap>(info) {
  Napi::Env env = info.Env();
  const double dims = numberArg(info, 0);
  if (!(dims >= 1 && dims <= 65536) || dims != static_cast<double>(static_cast<int64_t>(dims))) {
    throw argError(env, "dimensions from 1 to 65536");
  }
  const double capacity = info.Length() > 1 ? numberArg(info, 1) : 0;
  if (!(capacity >= 0 && capacity <= 1e10)) throw argError(env, "a capacity of 0 rows or more");
  try {
    index_ = std::make_shared<core::EmbeddingIndex>(static_cast<int64_t>(dims), static_cast<int64_t>(capacity));
  } catch (...) {
    throw makeError(env, describeCurrentException());
  }
}

// add(ids: Float64Array, rows: Float32Array) -> Promise<void>: all of them, or none (ERR_INVALID_ARG
// for an id present already). On libuv's pool: it waits for the searches in progress.
Napi::Value IndexWrap::Add(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    std::vector<int64_t> ids = idsArg(info, 0);
    torch::Tensor rows = floatRowsArg(info, 1, index_->dims());
    if (rows.size(0) != static_cast<int64_t>(ids.size())) throw argError(env, "one row per id");
    auto index = index_;
    return PromiseWorker<bool>::Start(
        env,
        [index, ids = std::move(ids), rows]() {
          index->add(ids, rows);
          return true;
        },
        [](Napi::Env e, bool&) -> Napi::Value { return e.Undefined(); });
  });
}

// remove(ids: Float64Array) -> Promise<number>: how many of them were present.
Napi::Value IndexWrap::Remove(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    std::vector<int64_t> ids = idsArg(info, 0);
    auto index = index_;
    return PromiseWorker<int64_t>::Start(
        env, [index, ids = std::move(ids)]() { return index->remove(ids); },
        [](Napi::Env e, int64_t& removed) -> Napi::Value {
          return Napi::Number::New(e, static_cast<double>(removed));
        });
  });
}

// size() -> number of rows (waits only for an add or remove in progress).
Napi::Value IndexWrap::Size(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(index_->size()));
}

void registerGallery(Napi::Env env, Napi::Object exports) {
  Napi::Function cls = IndexWrap::Define(env);
  Instance::get(env)->indexClass = Napi::Persistent(cls);
  exports.Set("NativeIndex", cls);
}

}  // namespace siamese::addon
