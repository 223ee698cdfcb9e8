// Trainer: the training loop in C++ over a TorchModule's parameters that require grad — loss
// (losses.h: Dice + Focal [+ soft clDice]), backward, gradient accumulation, clipping, AdamW with
// linear warm-up and cosine decay. With precision bfloat16 the module is cast to bf16 and the
// optimizer updates fp32 master copies of the trained parameters, copied back after each optimizer
// step. Calls run on the libuv pool in the order they were made; a step holds the module
// exclusively while it queues its work, so the next step can queue behind it before its loss is
// read back. No call waits on the JS thread for a step: dispose() releases the optimizer state in
// turn, after the calls made before it; any call after it throws ERR_CRACKSEG_DISPOSED.
#pragma once

#include <napi.h>

#include <memory>

namespace crackseg {

struct TrainingState;

class TrainerWrap : public Napi::ObjectWrap<TrainerWrap> {
 public:
  // Adds `createTrainer(module, options)` to `exports`.
  static void Init(Napi::Env env, Napi::Object exports);

  // new Trainer(module, options): collects the parameters that require grad at this moment (and
  // their fp32 masters), then casts the module to the options' precision.
  explicit TrainerWrap(const Napi::CallbackInfo& info);

 private:
  // The state; ERR_CRACKSEG_DISPOSED after dispose().
  std::shared_ptr<TrainingState> State() const;

  Napi::Value Step(const Napi::CallbackInfo& info);
  Napi::Value OptimizerSteps(const Napi::CallbackInfo& info);
  Napi::Value CachedImages(const Napi::CallbackInfo& info);
  Napi::Value Weights(const Napi::CallbackInfo& info);
  Napi::Value SaveState(const Napi::CallbackInfo& info);
  Napi::Value LoadState(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  std::shared_ptr<TrainingState> state_;
};

}  // namespace crackseg
