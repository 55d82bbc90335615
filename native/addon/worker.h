// A promise settled by work done off the main thread. The work runs on libuv's pool (short jobs
// only: reading files, predicting); it sees only plain C++ values, and JavaScript values are built
// in OnOK on the main thread. Every exception becomes a coded rejection.
#pragma once

#include <functional>
#include <optional>
#include <utility>

#include <napi.h>

#include "compute_thread.h"
#include "errors.h"

namespace siamese::addon {

template <typename Result>
class PromiseWorker : public Napi::AsyncWorker {
 public:
  using Work = std::function<Result()>;
  using ToJs = std::function<Napi::Value(Napi::Env, Result&)>;
  using Settled = std::function<void()>;

  // Where the work runs: on the libuv thread that picks it up (files), or handed from there to the
  // process's compute thread (inference; see compute_thread.h).
  enum class On { LibuvPool, ComputeThread };

  // `settled` (optional) runs on the main thread once the job is over, before the promise settles.
  static Napi::Promise Start(Napi::Env env, Work work, ToJs toJs, Settled settled = nullptr, On on = On::LibuvPool) {
    auto* worker = new PromiseWorker(env, std::move(work), std::move(toJs), std::move(settled), on);
    Napi::Promise promise = worker->deferred_.Promise();
    worker->Queue();
    return promise;
  }

 protected:
  void Execute() override {
    try {
      if (on_ == On::ComputeThread) {
        ComputeThread::get().run([this] { result_.emplace(work_()); });
      } else {
        result_.emplace(work_());
      }
    } catch (...) {
      error_ = describeCurrentException();
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (settled_) settled_();
    // Settling fails only while the environment shuts down (worker.terminate() or process.exit()
    // in a worker, with this job still in flight): JavaScript can no longer run, and an exception
    // escaping here would abort the whole process (std::terminate). The promise is moot then.
    try {
      settle(env);
    } catch (...) {
    }
  }

 private:
  void settle(Napi::Env env) {
    Napi::HandleScope scope(env);
    if (error_) {
      deferred_.Reject(makeError(env, *error_).Value());
      return;
    }
    try {
      deferred_.Resolve(toJs_(env, *result_));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (...) {
      deferred_.Reject(makeError(env, describeCurrentException()).Value());
    }
  }

  PromiseWorker(Napi::Env env, Work work, ToJs toJs, Settled settled, On on)
      : Napi::AsyncWorker(env, "siamese-torch"),
        on_(on),
        deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)),
        toJs_(std::move(toJs)),
        settled_(std::move(settled)) {}

  On on_;
  Napi::Promise::Deferred deferred_;
  Work work_;
  ToJs toJs_;
  Settled settled_;
  std::optional<Result> result_;
  std::optional<ErrorInfo> error_;
};

}  // namespace siamese::addon
