#include "trainer.h"

#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/optim/adamw.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <array>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <unordered_map>

#include "addon_data.h"
#include "async_job.h"
#include "device_transfer.h"
#include "errors.h"
#include "gradient_sync.h"
#include "js_values.h"
#include "losses.h"
#include "process_group.h"
#include "sam_ops.h"
#include "torch_module.h"

namespace crackseg {

struct TrainingOptions {
  double learningRate, minLearningRate, weightDecay, beta1, beta2, eps;
  int64_t warmupSteps, totalSteps, gradientAccumulation;
  double maxGradNorm, diceWeight, focalWeight, focalAlpha, focalGamma, skeletonWeight;
  c10::ScalarType computeDtype;  // the module's weights and activations
  int64_t seed;
  int64_t cacheLimit;
};

// One image's encode_image outputs, kept on the device.
using Embeddings = std::array<torch::Tensor, 3>;

struct TrainingState {
  std::shared_ptr<LoadedModule> model;
  std::vector<std::string> names;         // of the trained parameters
  std::vector<torch::Tensor> parameters;  // the module's, in computeDtype
  // fp32 master copies that the optimizer updates; the very tensors of `parameters` when the
  // module computes in fp32.
  std::vector<torch::Tensor> masters;
  TrainingOptions options;
  std::unique_ptr<torch::optim::AdamW> optimizer;
  // Set by distribute(): averages the gradients across ranks at optimizer-step boundaries.
  std::unique_ptr<GradientSync> sync;
  int64_t microSteps = 0;
  std::atomic<int64_t> optimizerSteps{0};
  // Whether every micro-batch loss since the last optimizer step was finite (a device scalar;
  // undefined before the first micro-batch of a step).
  torch::Tensor lossesFinite;
  // Embeddings of images whose encoder pass has no trainable parameter, by the caller's key.
  std::unordered_map<std::string, Embeddings> cache;
  std::atomic<int64_t> cachedImages{0};
  std::mutex mutex;  // held by whatever uses the state: a step while queueing, save, load, weights
  // Calls run in the order they were made: each takes a ticket on the JS thread and waits for its
  // turn. A step hands the turn on once its work is queued on the device, so the next step queues
  // behind it while the first one's loss comes back.
  int64_t ticketsIssued = 0;  // JS thread only
  std::mutex turnMutex;
  std::condition_variable turnChanged;
  int64_t nowServing = 0;
};

namespace {

// Waits for `ticket`'s turn on construction; hands the turn to the next ticket when destroyed.
class Turn {
 public:
  Turn(TrainingState& state, int64_t ticket) : state_(state) {
    std::unique_lock<std::mutex> lock(state.turnMutex);
    state.turnChanged.wait(lock, [&] { return state.nowServing == ticket; });
  }
  ~Turn() {
    {
      std::lock_guard<std::mutex> lock(state_.turnMutex);
      state_.nowServing += 1;
    }
    state_.turnChanged.notify_all();
  }
  Turn(const Turn&) = delete;
  Turn& operator=(const Turn&) = delete;

 private:
  TrainingState& state_;
};

struct StepResult {
  double loss = 0, dice = 0, focal = 0, skeleton = 0, learningRate = 0, gradNorm = 0;
  int64_t optimizerSteps = 0;
  bool stepped = false;
  // The optimizer step was skipped: a loss or the gradient norm was not finite.
  bool skipped = false;
  int64_t cachedImages = 0;
};

// A step whose work is queued on the device; its losses and gradient norm are on their way.
struct QueuedStep {
  StepResult result;
  HostCopy scalars;  // float64 [loss, dice, focal, skeleton, gradNorm]

  // The complete result, once the scalars arrived (the step's one wait for the device).
  StepResult Finish() {
    torch::Tensor values = scalars.Wait();
    auto v = values.accessor<double, 1>();
    result.loss = v[0];
    result.dice = v[1];
    result.focal = v[2];
    result.skeleton = v[3];
    result.gradNorm = v[4];
    return result;
  }
};

struct Batch {
  torch::Tensor images;  // uint8 [B, H, W, 3]
  torch::Tensor masks;   // uint8 [B, H, W], 0/1
  PromptTensors prompts;
  std::vector<std::string> cacheKeys;  // one per image, or empty
};

// Linear warm-up from 0 over `warmupSteps`, then cosine decay to minLearningRate at totalSteps.
double LearningRateAt(const TrainingOptions& o, int64_t step) {
  if (step < o.warmupSteps) return o.learningRate * static_cast<double>(step + 1) / o.warmupSteps;
  double span = static_cast<double>(std::max<int64_t>(1, o.totalSteps - o.warmupSteps));
  double progress = std::min(1.0, static_cast<double>(step - o.warmupSteps) / span);
  return o.minLearningRate +
         0.5 * (o.learningRate - o.minLearningRate) * (1.0 + std::cos(M_PI * progress));
}

// Scales the gradients so that their global L2 norm is at most maxNorm (torch's
// clip_grad_norm_: factor min(1, maxNorm / (norm + 1e-6))); returns the norm before clipping, a
// device scalar (reading it would wait for the device).
torch::Tensor ClipGradNorm(const std::vector<torch::Tensor>& parameters, double maxNorm) {
  std::vector<torch::Tensor> norms;
  for (const auto& param : parameters)
    if (param.grad().defined()) norms.push_back(param.grad().detach().norm(2));
  if (norms.empty()) return torch::zeros({}, parameters.front().options());
  torch::Tensor total = torch::stack(norms).norm(2);
  if (maxNorm > 0) {
    torch::Tensor factor = torch::clamp_max(maxNorm / (total + 1e-6), 1.0);
    for (const auto& param : parameters)
      if (param.grad().defined()) param.grad().detach().mul_(factor);
  }
  return total;
}

bool SeparateMasters(const TrainingState& state) {
  return state.options.computeDtype != torch::kFloat;
}

// Moves the module parameters' gradients into their fp32 masters (summed there across
// micro-batches, so accumulation does not round to bf16 each time).
void AccumulateIntoMasters(TrainingState& state) {
  for (size_t i = 0; i < state.parameters.size(); ++i) {
    torch::Tensor& grad = state.parameters[i].mutable_grad();
    if (!grad.defined()) continue;
    torch::Tensor& master = state.masters[i].mutable_grad();
    if (master.defined())
      master.add_(grad.to(torch::kFloat));
    else
      master = grad.to(torch::kFloat);
    grad = torch::Tensor();
  }
}

// Copies the updated masters into the module's parameters (rounding to computeDtype).
void CopyMastersToParameters(TrainingState& state) {
  torch::NoGradGuard noGrad;
  for (size_t i = 0; i < state.parameters.size(); ++i) state.parameters[i].copy_(state.masters[i]);
}

// Sets the module's training mode for the scope of a step and restores the previous mode after.
class TrainingModeScope {
 public:
  explicit TrainingModeScope(torch::jit::Module& module)
      : module_(module), wasTraining_(module.is_training()) {
    module_.train(true);
  }
  ~TrainingModeScope() { module_.train(wasTraining_); }

 private:
  torch::jit::Module& module_;
  bool wasTraining_;
};

// encode_image for the batch: cached embeddings where the caller gave a key seen before, one
// encoder pass for the rest. Embeddings that do not depend on a trainable parameter (the encoder
// frozen, as with LoRA strategy A) are cached, up to cacheLimit images.
std::vector<c10::IValue> BatchEmbeddings(TrainingState& state, const Batch& batch,
                                         const torch::Tensor& images) {
  std::vector<int64_t> missing;
  for (int64_t b = 0; b < images.size(0); ++b)
    if (batch.cacheKeys.empty() || !state.cache.count(batch.cacheKeys[b])) missing.push_back(b);
  if (static_cast<int64_t>(missing.size()) == images.size(0) && batch.cacheKeys.empty())
    return EncodeImages(state.model->module, images);

  std::vector<c10::IValue> encoded;
  if (!missing.empty()) {
    torch::Tensor index = Upload(torch::tensor(missing, torch::kLong), images.device());
    encoded = EncodeImages(state.model->module, images.index_select(0, index));
  }
  bool frozen = !encoded.empty() && !encoded[0].toTensor().requires_grad() &&
                !encoded[1].toTensor().requires_grad() && !encoded[2].toTensor().requires_grad();
  std::vector<std::vector<torch::Tensor>> parts(3);
  size_t next = 0;
  for (int64_t b = 0; b < images.size(0); ++b) {
    Embeddings embeddings;
    if (next < missing.size() && missing[next] == b) {
      for (int i = 0; i < 3; ++i)
        embeddings[i] = encoded[i].toTensor().narrow(0, static_cast<int64_t>(next), 1);
      ++next;
      if (frozen && static_cast<int64_t>(state.cache.size()) < state.options.cacheLimit) {
        Embeddings kept;
        for (int i = 0; i < 3; ++i) kept[i] = embeddings[i].detach().clone();
        state.cache.emplace(batch.cacheKeys[b], std::move(kept));
        state.cachedImages = static_cast<int64_t>(state.cache.size());
      }
    } else {
      embeddings = state.cache.at(batch.cacheKeys[b]);
    }
    for (int i = 0; i < 3; ++i) parts[i].push_back(embeddings[i]);
  }
  return {torch::cat(parts[0]), torch::cat(parts[1]), torch::cat(parts[2])};
}

// Queues one micro-batch's forward, loss, backward and (every gradientAccumulation) optimizer step.
QueuedStep QueueStep(TrainingState& state, const Batch& batch) {
  std::lock_guard<std::mutex> lock(state.mutex);
  if (!state.optimizer) ThrowError(ErrorCode::kDisposed, "this trainer was disposed");
  LoadedModule& model = *state.model;
  std::unique_lock<std::shared_mutex> writing(model.access);
  const TrainingOptions& o = state.options;
  TrainingModeScope training(model.module);
  // The module's methods run op by op, each op recording its own backward as eager PyTorch does:
  // the optimizing executor's differentiable graphs keep more of the forward alive for backward
  // (docs/benchmarks.md, "Training memory"). Thread-local: prediction keeps the optimized plans.
  torch::jit::GraphOptimizerEnabledGuard opOrder(false);

  int64_t batchSize = batch.images.size(0);
  int64_t height = batch.images.size(1), width = batch.images.size(2);
  torch::Tensor images = Upload(batch.images, model.device);
  // encode_image + decode (single mask, no mask input) is the module's forward.
  torch::Tensor lowRes = DecodePrompts(model.module, BatchEmbeddings(state, batch, images),
                                       batch.prompts, model.device)
                             .first;
  // The loss is computed in fp32 whatever the module's dtype.
  torch::Tensor logits =
      UpsampledUnion(lowRes, PromptsPerImage(batch.prompts.imageIndex, batchSize), height, width);
  torch::Tensor target = Upload(batch.masks, model.device).to(torch::kFloat).unsqueeze(1);
  torch::Tensor probabilities = torch::sigmoid(logits);
  torch::Tensor dice = DiceLoss(probabilities, target);
  torch::Tensor focal = FocalLoss(logits, probabilities, target, o.focalAlpha, o.focalGamma);
  torch::Tensor loss = o.diceWeight * dice + o.focalWeight * focal;
  torch::Tensor skeleton = torch::zeros({}, logits.options());
  if (o.skeletonWeight > 0) {
    skeleton = SoftClDiceLoss(probabilities, target);
    loss = loss + o.skeletonWeight * skeleton;
  }
  bool reduce = state.sync && (state.microSteps + 1) % o.gradientAccumulation == 0;
  if (reduce) state.sync->Arm();
  try {
    (loss / static_cast<double>(o.gradientAccumulation)).backward();
  } catch (...) {
    if (reduce) state.sync->Disarm();
    throw;
  }
  if (reduce)
    state.sync->Finish();  // leaves the rank-averaged sum of the micro-batches in the masters
  else if (SeparateMasters(state))
    AccumulateIntoMasters(state);
  torch::Tensor lossFinite = torch::isfinite(loss.detach());
  state.lossesFinite =
      state.lossesFinite.defined() ? state.lossesFinite.logical_and(lossFinite) : lossFinite;

  StepResult result;
  result.learningRate = LearningRateAt(o, state.optimizerSteps);
  state.microSteps += 1;
  torch::Tensor gradNorm = torch::zeros({}, logits.options());
  if (state.microSteps % o.gradientAccumulation == 0) {
    gradNorm = ClipGradNorm(state.masters, o.maxGradNorm);
    // A non-finite loss or gradient never reaches the weights or the AdamW moments: the step is
    // skipped, as AMP's gradient scaler does. Deciding waits for the device once per optimizer
    // step (the micro-batches between steps still queue without waiting).
    bool finite = state.lossesFinite.logical_and(torch::isfinite(gradNorm)).item<bool>();
    state.lossesFinite = torch::Tensor();
    if (finite) {
      for (auto& group : state.optimizer->param_groups())
        static_cast<torch::optim::AdamWOptions&>(group.options()).lr(result.learningRate);
      state.optimizer->step();
      if (SeparateMasters(state)) CopyMastersToParameters(state);
      state.optimizerSteps += 1;
      result.stepped = true;
    } else {
      result.skipped = true;
    }
    state.optimizer->zero_grad();
  }
  result.optimizerSteps = state.optimizerSteps;
  result.cachedImages = state.cachedImages;
  torch::Tensor scalars = torch::stack({loss.detach(), dice.detach(), focal.detach(),
                                        skeleton.detach(), gradNorm.to(torch::kFloat)});
  return {result, HostCopy(scalars.to(torch::kDouble))};
}

double NumberOption(const Napi::Object& options, const char* name, double minimum, double maximum) {
  Napi::Value value = options.Get(name);
  std::string what = std::string("trainer option ") + name;
  if (!value.IsNumber()) ThrowTypeError(TypeCode::kArgument, what + " must be a number");
  double number = value.As<Napi::Number>().DoubleValue();
  if (!(number >= minimum && number <= maximum))
    ThrowRangeError(RangeCode::kRange, what + " must be a number in [" + c10::str(minimum) + ", " +
                                           c10::str(maximum) + "]");
  return number;
}

int64_t CountOption(const Napi::Object& options, const char* name, int64_t minimum) {
  // Counts stay below 2^53, where doubles hold integers exactly.
  return IntegerFromJs(options.Get(name), minimum, (int64_t{1} << 53) - 1,
                       std::string("trainer option ") + name);
}

TrainingOptions OptionsFromJs(const Napi::Value& value) {
  Napi::Env env = value.Env();
  if (!value.IsObject()) ThrowTypeError(TypeCode::kArgument, "trainer options must be an object");
  Napi::Object o = value.As<Napi::Object>();
  Napi::Value betas = o.Get("betas");
  if (!betas.IsArray() || betas.As<Napi::Array>().Length() != 2)
    ThrowTypeError(TypeCode::kArgument, "trainer option betas must be [beta1, beta2]");
  Napi::Object betaPair = Napi::Object::New(env);
  betaPair.Set("betas[0]", betas.As<Napi::Array>().Get(0u));
  betaPair.Set("betas[1]", betas.As<Napi::Array>().Get(1u));
  Napi::Value precision = o.Get("precision");
  std::string dtype = precision.IsString() ? precision.As<Napi::String>().Utf8Value() : "";
  if (dtype != "float32" && dtype != "bfloat16")
    ThrowRangeError(RangeCode::kRange, "trainer option precision must be 'float32' or 'bfloat16'");
  constexpr double kHuge = 1e30;
  Napi::Value cacheLimit = o.Get("cacheLimit");
  return {
      NumberOption(o, "learningRate", 0, kHuge),
      NumberOption(o, "minLearningRate", 0, kHuge),
      NumberOption(o, "weightDecay", 0, kHuge),
      NumberOption(betaPair, "betas[0]", 0, 0.999999),
      NumberOption(betaPair, "betas[1]", 0, 0.999999),
      NumberOption(o, "eps", 0, kHuge),
      CountOption(o, "warmupSteps", 0),
      CountOption(o, "totalSteps", 1),
      CountOption(o, "gradientAccumulation", 1),
      NumberOption(o, "maxGradNorm", 0, kHuge),
      NumberOption(o, "diceWeight", 0, kHuge),
      NumberOption(o, "focalWeight", 0, kHuge),
      NumberOption(o, "focalAlpha", 0, 1),
      NumberOption(o, "focalGamma", 0, kHuge),
      NumberOption(o, "skeletonWeight", 0, kHuge),
      dtype == "bfloat16" ? torch::kBFloat16 : torch::kFloat,
      CountOption(o, "seed", 0),
      cacheLimit.IsUndefined() ? 0 : CountOption(o, "cacheLimit", 0),
  };
}

Batch BatchFromJs(const Napi::Value& value) {
  if (!value.IsObject())
    ThrowTypeError(TypeCode::kArgument, "batch must be {images, masks, prompts}");
  Napi::Object object = value.As<Napi::Object>();
  Batch batch;
  batch.images = TensorFromJs(object.Get("images"), torch::kUInt8, 4, "batch.images");
  batch.masks = TensorFromJs(object.Get("masks"), torch::kUInt8, 3, "batch.masks");
  int64_t batchSize = batch.images.size(0);
  if (batch.images.size(3) != 3 || batchSize < 1)
    ThrowRangeError(RangeCode::kShape, "batch.images must be [B, H, W, 3] with B >= 1");
  if (batch.masks.size(0) != batchSize || batch.masks.size(1) != batch.images.size(1) ||
      batch.masks.size(2) != batch.images.size(2))
    ThrowRangeError(RangeCode::kShape, "batch.masks " + c10::str(batch.masks.sizes()) +
                                           " must be [B, H, W] of images " +
                                           c10::str(batch.images.sizes()));
  if (batch.masks.numel() > 0 && batch.masks.max().item<uint8_t>() > 1)
    ThrowRangeError(RangeCode::kRange, "batch.masks must hold 0 and 1 only (not 0/255)");
  batch.prompts = PromptsFromJs(object.Get("prompts"), batchSize, "batch.prompts");
  for (const auto& members : PromptsPerImage(batch.prompts.imageIndex, batchSize))
    if (members.empty())
      ThrowRangeError(RangeCode::kShape, "batch.prompts: every image needs at least one prompt");
  Napi::Value keys = object.Get("cacheKeys");
  if (!keys.IsUndefined()) {
    if (!keys.IsArray() || keys.As<Napi::Array>().Length() != static_cast<uint32_t>(batchSize))
      ThrowTypeError(TypeCode::kArgument, "batch.cacheKeys must be one string per image");
    for (uint32_t i = 0; i < keys.As<Napi::Array>().Length(); ++i) {
      Napi::Value key = keys.As<Napi::Array>().Get(i);
      if (!key.IsString()) ThrowTypeError(TypeCode::kArgument, "batch.cacheKeys must be strings");
      batch.cacheKeys.push_back(key.As<Napi::String>());
    }
  }
  return batch;
}

std::unique_ptr<torch::optim::AdamW> MakeOptimizer(const TrainingState& state) {
  const TrainingOptions& o = state.options;
  return std::make_unique<torch::optim::AdamW>(state.masters,
                                               torch::optim::AdamWOptions(o.learningRate)
                                                   .betas({o.beta1, o.beta2})
                                                   .eps(o.eps)
                                                   .weight_decay(o.weightDecay));
}

// Runs `work` on the libuv pool in the trainer's call order, holding its state (refused once
// disposed); `finish` makes the JS value.
template <typename Result>
Napi::Value InTurn(Napi::Env env, const std::shared_ptr<TrainingState>& state,
                   std::function<Result(TrainingState&)> work,
                   typename AsyncJob<Result>::Finish finish) {
  int64_t ticket = state->ticketsIssued++;
  return AsyncJob<Result>::Start(
      env,
      [state, ticket, work = std::move(work)]() {
        Turn turn(*state, ticket);
        std::lock_guard<std::mutex> lock(state->mutex);
        if (!state->optimizer) ThrowError(ErrorCode::kDisposed, "this trainer was disposed");
        return work(*state);
      },
      std::move(finish));
}

Napi::Value Undefined(Napi::Env env, bool&) { return env.Undefined(); }

}  // namespace

void TrainerWrap::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function constructor =
      DefineClass(env, "Trainer",
                  {
                      InstanceMethod<&TrainerWrap::Step>("step"),
                      InstanceAccessor<&TrainerWrap::OptimizerSteps>("optimizerSteps"),
                      InstanceAccessor<&TrainerWrap::CachedImages>("cachedImages"),
                      InstanceMethod<&TrainerWrap::Weights>("weights"),
                      InstanceMethod<&TrainerWrap::StateBytes>("stateBytes"),
                      InstanceMethod<&TrainerWrap::LoadState>("loadState"),
                      InstanceMethod<&TrainerWrap::Distribute>("distribute"),
                      InstanceMethod<&TrainerWrap::Dispose>("dispose"),
                  });
  GetAddonData(env).trainer = Napi::Persistent(constructor);
  exports.Set("createTrainer",
              Napi::Function::New(
                  env,
                  [](const Napi::CallbackInfo& info) -> Napi::Value {
                    return Guarded(info.Env(), [&]() -> Napi::Value {
                      return GetAddonData(info.Env()).trainer.New({info[0], info[1]});
                    });
                  },
                  "createTrainer"));
}

TrainerWrap::TrainerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TrainerWrap>(info) {
  Napi::Env env = info.Env();
  Guarded(env, [&] {
    if (info.Length() < 2) ThrowTypeError(TypeCode::kArgument, "createTrainer(module, options)");
    auto model = TorchModuleWrap::FromValue(info[0], "createTrainer: module");
    TrainingOptions options = OptionsFromJs(info[1]);
    state_ = std::make_shared<TrainingState>();
    state_->model = model;
    state_->options = options;
    std::unique_lock<std::shared_mutex> writing(model->access);
    model->CheckAlive();
    for (const auto& param : model->module.named_parameters(true)) {
      if (!param.value.requires_grad()) continue;
      state_->names.push_back(param.name);
      state_->parameters.push_back(param.value);
    }
    if (state_->parameters.empty())
      ThrowError(ErrorCode::kNotFound,
                 "createTrainer: the module has no parameter that requires grad");
    // Masters are taken before the cast, so they keep what the module held in fp32.
    for (const auto& param : state_->parameters)
      state_->masters.push_back(SeparateMasters(*state_)
                                    ? param.detach().to(torch::kFloat, /*non_blocking=*/false,
                                                        /*copy=*/true)
                                    : param);
    model->ConvertTo(options.computeDtype);
    // Seeds libtorch's global generator (LoRA dropout draws from it).
    torch::manual_seed(static_cast<uint64_t>(options.seed));
    state_->optimizer = MakeOptimizer(*state_);
    return 0;
  });
}

std::shared_ptr<TrainingState> TrainerWrap::State() const {
  if (!state_) ThrowError(ErrorCode::kDisposed, "this trainer was disposed");
  return state_;
}

Napi::Value TrainerWrap::Step(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    if (info.Length() < 1) ThrowTypeError(TypeCode::kArgument, "step(batch)");
    auto state = State();
    state->model->CheckAlive();  // a step queued before the module's dispose() still runs
    Batch batch = BatchFromJs(info[0]);
    int64_t ticket = state->ticketsIssued++;
    return AsyncJob<StepResult>::Start(
        env,
        [state, batch, ticket]() {
          QueuedStep queued = [&] {
            Turn turn(*state, ticket);
            return QueueStep(*state, batch);
          }();
          return queued.Finish();
        },
        [](Napi::Env env, StepResult& r) -> Napi::Value {
          Napi::Object result = Napi::Object::New(env);
          result.Set("loss", r.loss);
          result.Set("dice", r.dice);
          result.Set("focal", r.focal);
          result.Set("skeleton", r.skeleton);
          result.Set("learningRate", r.learningRate);
          result.Set("optimizerSteps", static_cast<double>(r.optimizerSteps));
          result.Set("stepped", r.stepped);
          result.Set("skipped", r.skipped);
          result.Set("gradNorm", r.gradNorm);
          result.Set("cachedImages", static_cast<double>(r.cachedImages));
          return result;
        });
  });
}

Napi::Value TrainerWrap::OptimizerSteps(const Napi::CallbackInfo& info) {
  return Guarded(info.Env(), [&]() -> Napi::Value {
    return Napi::Number::New(info.Env(), static_cast<double>(State()->optimizerSteps));
  });
}

Napi::Value TrainerWrap::CachedImages(const Napi::CallbackInfo& info) {
  return Guarded(info.Env(), [&]() -> Napi::Value {
    return Napi::Number::New(info.Env(), static_cast<double>(State()->cachedImages));
  });
}

Napi::Value TrainerWrap::Weights(const Napi::CallbackInfo& info) {
  using Named = std::vector<std::pair<std::string, torch::Tensor>>;
  return Guarded(info.Env(), [&] {
    return InTurn<Named>(
        info.Env(), State(),
        [](TrainingState& state) {
          std::vector<torch::Tensor> masters;
          for (const auto& master : state.masters) masters.push_back(master.detach().clone());
          std::vector<torch::Tensor> host = Download(masters);
          Named named;
          for (size_t i = 0; i < host.size(); ++i) named.emplace_back(state.names[i], host[i]);
          return named;
        },
        [](Napi::Env env, Named& named) -> Napi::Value {
          Napi::Object result = Napi::Object::New(env);
          for (const auto& [name, tensor] : named) result.Set(name, TensorToJs(env, tensor));
          return result;
        });
  });
}

Napi::Value TrainerWrap::StateBytes(const Napi::CallbackInfo& info) {
  return Guarded(info.Env(), [&] {
    return InTurn<std::string>(
        info.Env(), State(),
        [](TrainingState& state) {
          torch::serialize::OutputArchive archive;
          state.optimizer->save(archive);
          archive.write("micro_steps", torch::tensor(state.microSteps));
          archive.write("optimizer_steps", torch::tensor(state.optimizerSteps.load()));
          // Into memory: the caller writes the file, where a full disk is an ordinary error (a
          // file stream's writer throws from its destructor, which ends the process).
          std::string bytes;
          archive.save_to([&bytes](const void* data, size_t size) {
            bytes.append(static_cast<const char*>(data), size);
            return size;
          });
          return bytes;
        },
        [](Napi::Env env, std::string& bytes) -> Napi::Value {
          return Napi::Buffer<char>::Copy(env, bytes.data(), bytes.size());
        });
  });
}

Napi::Value TrainerWrap::LoadState(const Napi::CallbackInfo& info) {
  return Guarded(info.Env(), [&] {
    std::string path = StringArg(info, 0, "path");
    return InTurn<bool>(
        info.Env(), State(),
        [path](TrainingState& state) {
          // Everything is read into fresh objects first: a bad file leaves the trainer as it was.
          auto optimizer = MakeOptimizer(state);
          torch::Tensor micro, steps;
          try {
            torch::serialize::InputArchive archive;
            archive.load_from(path);
            archive.read("micro_steps", micro);
            archive.read("optimizer_steps", steps);
            optimizer->load(archive);
          } catch (const c10::Error& e) {
            ThrowError(ErrorCode::kIo,
                       "cannot load trainer state '" + path + "': " + e.what_without_backtrace());
          }
          state.optimizer = std::move(optimizer);
          state.lossesFinite = torch::Tensor();
          state.microSteps = micro.item<int64_t>();
          state.optimizerSteps = steps.item<int64_t>();
          return true;
        },
        Undefined);
  });
}

Napi::Value TrainerWrap::Distribute(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Guarded(env, [&] {
    if (info.Length() < 2 || !info[1].IsNumber())
      ThrowTypeError(TypeCode::kArgument, "distribute(group, bucketBytes)");
    auto group = ProcessGroupWrap::FromValue(info[0], "distribute: group");
    int64_t bucketBytes = info[1].As<Napi::Number>().Int64Value();
    if (bucketBytes < 1)
      ThrowRangeError(RangeCode::kRange, "distribute: bucketBytes must be positive");
    auto state = State();
    std::lock_guard<std::mutex> lock(state->mutex);
    if (state->microSteps % state->options.gradientAccumulation != 0)
      ThrowError(ErrorCode::kDistributed, "distribute: call it between optimizer steps");
    state->sync =
        std::make_unique<GradientSync>(group, state->parameters, state->masters, bucketBytes);
    return 0;
  });
  return env.Undefined();
}

Napi::Value TrainerWrap::Dispose(const Napi::CallbackInfo& info) {
  return Guarded(info.Env(), [&] {
    // Released in turn, after the calls made before it: the JS thread never waits for a step.
    if (state_)
      InTurn<bool>(
          info.Env(), state_,
          [](TrainingState& state) {
            state.optimizer.reset();
            state.sync.reset();
            state.cache.clear();
            state.cachedImages = 0;
            return true;
          },
          Undefined);
    state_.reset();
    return info.Env().Undefined();
  });
}

}  // namespace crackseg
