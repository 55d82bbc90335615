// One long-lived thread per process that runs the models' inference jobs (embed, predict,
// classify, evaluate), one at a time.
//
// Why: LibTorch's CPU kernels run on an OpenMP team that belongs to the thread calling them. On
// libuv's pool, consecutive calls land on different threads, each with its own team, whose idle
// threads spin and compete for the cores: a single-pair predict took ~2.4 ms that way and ~1.1 ms
// when every call ran on the same thread (scripts/bench/results). The libuv thread that picks the
// job up hands it over here and waits, so the promise machinery of PromiseWorker is unchanged.
// Training keeps its own thread (native/addon/model.cc).
#pragma once

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

#include <torch/torch.h>

namespace siamese::addon {

class ComputeThread {
 public:
  // Never destroyed: the thread may still be inside LibTorch while the process exits.
  static ComputeThread& get() {
    static auto* instance = new ComputeThread();
    return *instance;
  }

  // Runs `task` on the compute thread and waits for it; its exception, if any, is rethrown here.
  void run(const std::function<void()>& task) {
    Item item{&task, nullptr, false};
    std::unique_lock<std::mutex> lock(mutex_);
    queue_.push_back(&item);
    wake_.notify_one();
    done_.wait(lock, [&] { return item.finished; });
    if (item.error) std::rethrow_exception(item.error);
  }

 private:
  struct Item {
    const std::function<void()>* task;
    std::exception_ptr error;
    bool finished;
  };

  ComputeThread() : thread_([this] { loop(); }) { thread_.detach(); }

  void loop() {
    torch::NoGradGuard noGrad;  // inference only
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return !queue_.empty(); });
      Item* item = queue_.front();
      queue_.pop_front();
      lock.unlock();
      try {
        (*item->task)();
      } catch (...) {
        item->error = std::current_exception();
      }
      lock.lock();
      item->finished = true;
      done_.notify_all();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  std::deque<Item*> queue_;
  std::thread thread_;
};

}  // namespace siamese::addon
