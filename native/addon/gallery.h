// A gallery's in-memory embeddings (core::EmbeddingIndex) as a JavaScript object, NativeIndex.
// lib/gallery.ts keeps it in step with the gallery's database; model.searchIndex() searches it.
#pragma once

#include <memory>

#include <napi.h>

#include "../core/gallery_index.h"

namespace siamese::addon {

class IndexWrap : public Napi::ObjectWrap<IndexWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  // The index a JavaScript value is, or nullptr when it is not one.
  static IndexWrap* from(Napi::Env env, const Napi::Value& value);

  // new NativeIndex(dims, capacity?): capacity, rows to make room for at once
  explicit IndexWrap(const Napi::CallbackInfo& info);

  // Shared with the jobs that use it, so that it outlives a search in flight.
  const std::shared_ptr<core::EmbeddingIndex>& index() const { return index_; }

 private:
  Napi::Value Add(const Napi::CallbackInfo& info);
  Napi::Value Remove(const Napi::CallbackInfo& info);
  Napi::Value Size(const Napi::CallbackInfo& info);

  std::shared_ptr<core::EmbeddingIndex> index_;
};

void registerGallery(Napi::Env env, Napi::Object exports);

}  // namespace siamese::addon
