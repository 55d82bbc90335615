#include "errors.h"

#include <cstring>
#include <filesystem>
#include <new>

#include <c10/util/Exception.h>

#include "../core/distributed.h"
#include "../core/errors.h"
#include "instance.h"

namespace siamese::addon {

namespace {

// "DefaultCPUAllocator: can't allocate memory: you tried to allocate N bytes..." (posix_memalign
// failing) or "DefaultCPUAllocator: not enough memory: ..." (malloc failing), in LibTorch 1.x and 2.x.
bool isAllocationFailure(const char* message) {
  return std::strstr(message, "DefaultCPUAllocator: can't allocate memory") != nullptr ||
         std::strstr(message, "DefaultCPUAllocator: not enough memory") != nullptr;
}

}  // namespace

ErrorInfo describeCurrentException() {
  try {
    throw;
  } catch (const core::BadFileError& e) {
    return {"ERR_BAD_FILE", e.what(), e.path()};
  } catch (const core::CudaUnavailableError& e) {
    return {"ERR_CUDA_UNAVAILABLE", e.what(), ""};
  } catch (const core::UnsupportedError& e) {
    return {"ERR_UNSUPPORTED", e.what(), ""};
  } catch (const core::InvalidArgumentError& e) {
    return {"ERR_INVALID_ARG", e.what(), ""};
  } catch (const core::DistributedError& e) {
    return {"ERR_DISTRIBUTED", e.what(), ""};
  } catch (const c10::OutOfMemoryError& e) {
    return {"ERR_TORCH_OOM", e.what_without_backtrace(), ""};
  } catch (const c10::Error& e) {
    // LibTorch's own CPU allocator (c10::alloc_cpu, used for small buffers, and for all of them
    // with SIAMESE_TORCH_CPU_ALLOCATOR=system) reports a failed allocation as a plain c10::Error.
    const char* message = e.what_without_backtrace();
    if (isAllocationFailure(message)) return {"ERR_TORCH_OOM", message, ""};
    return {"ERR_TORCH", message, ""};
  } catch (const std::filesystem::filesystem_error& e) {
    // A folder that cannot be made or a file that cannot be written (the output folder of a run).
    return {"ERR_BAD_FILE", e.path1().string() + ": " + e.code().message(), e.path1().string()};
  } catch (const std::bad_alloc&) {
    return {"ERR_NATIVE_OOM", "out of memory", ""};
  } catch (const std::exception& e) {
    return {"ERR_NATIVE", e.what(), ""};
  } catch (...) {
    return {"ERR_NATIVE", "unknown native exception", ""};
  }
}

Napi::Error makeError(Napi::Env env, const ErrorInfo& info) {
  const Instance* instance = Instance::get(env);
  if (instance == nullptr || instance->errorClass.IsEmpty()) {
    // Only reachable before lib/ has registered its class: still give the code.
    Napi::Error error = Napi::Error::New(env, info.message);
    error.Set("code", Napi::String::New(env, info.code));
    return error;
  }
  Napi::Object options = Napi::Object::New(env);
  if (!info.path.empty()) options.Set("path", Napi::String::New(env, info.path));
  Napi::Object error = instance->errorClass.New({
      Napi::String::New(env, info.message),
      Napi::String::New(env, info.code),
      options,
  });
  return Napi::Error(env, error);
}

}  // namespace siamese::addon
