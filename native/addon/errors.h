// Turning C++ exceptions into coded JavaScript errors. Every entry point and every worker goes
// through here, so that no exception ever crosses into JavaScript unconverted.
#pragma once

#include <exception>
#include <string>

#include <napi.h>

namespace siamese::addon {

// A failure as plain data: safe to build on a worker thread and carry to the main thread.
struct ErrorInfo {
  std::string code;     // stable code, e.g. ERR_TORCH, ERR_TORCH_OOM, ERR_NATIVE
  std::string message;  // without LibTorch's C++ backtrace
  std::string path;     // the file involved, if any
};

// Classifies the exception currently being handled. Call only inside a catch block.
ErrorInfo describeCurrentException();

// A SiameseTorchError instance (the class that lib/ registers at load), with code and path set.
Napi::Error makeError(Napi::Env env, const ErrorInfo& info);

// Runs body; any exception becomes a thrown SiameseTorchError.
template <typename Body>
Napi::Value guarded(Napi::Env env, Body&& body) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    throw makeError(env, describeCurrentException());
  }
}

}  // namespace siamese::addon
