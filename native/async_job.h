// Runs work on the libuv thread pool and settles a Promise on the JS thread: the event loop never
// waits for libtorch.
#pragma once

#include <napi.h>

#include <functional>
#include <optional>
#include <utility>
#include <vector>

#include "errors.h"

namespace crackseg {

template <typename Result>
class AsyncJob : public Napi::AsyncWorker {
 public:
  // `work` runs off the JS thread and may throw; `finish` builds the JS value on the JS thread. A
  // C++ exception in either rejects the Promise with the JS error of errors.h.
  using Work = std::function<Result()>;
  using Finish = std::function<Napi::Value(Napi::Env, Result&)>;

  // `keepAlive`: JS values whose memory `work` reads in place; referenced until the job is done.
  static Napi::Promise Start(Napi::Env env, Work work, Finish finish,
                             const std::vector<Napi::Value>& keepAlive = {}) {
    auto* job = new AsyncJob(env, std::move(work), std::move(finish));
    for (const Napi::Value& value : keepAlive) job->keepAlive_.push_back(Napi::Persistent(value));
    Napi::Promise promise = job->deferred_.Promise();
    job->Queue();  // the worker deletes itself after OnOK/OnError
    return promise;
  }

 protected:
  void Execute() override {
    try {
      result_ = work_();
    } catch (...) {
      failure_ = CurrentNativeError();
    }
  }

  void OnOK() override {
    if (failure_) {
      deferred_.Reject(ToJsError(Env(), *failure_).Value());
      return;
    }
    try {
      deferred_.Resolve(finish_(Env(), result_));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (...) {
      deferred_.Reject(ToJsError(Env(), CurrentNativeError()).Value());
    }
  }

  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

 private:
  AsyncJob(Napi::Env env, Work work, Finish finish)
      : Napi::AsyncWorker(env),
        deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)),
        finish_(std::move(finish)) {}

  Napi::Promise::Deferred deferred_;
  Work work_;
  Finish finish_;
  Result result_{};
  std::optional<NativeError> failure_;  // what `work` threw
  // Released with the job, on the JS thread.
  std::vector<Napi::Reference<Napi::Value>> keepAlive_;
};

}  // namespace crackseg
