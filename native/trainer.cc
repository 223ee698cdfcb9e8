#include "trainer.h"

#include <torch/optim/adamw.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <cmath>
#include <cstdio>
#include <mutex>

#include "addon_data.h"
#include "async_job.h"
#include "sam_ops.h"
#include "torch_module.h"

namespace crackseg {

struct TrainingOptions {
  double learningRate, minLearningRate, weightDecay, beta1, beta2, eps;
  int64_t warmupSteps, totalSteps, gradientAccumulation;
  double maxGradNorm, diceWeight, focalWeight, focalAlpha, focalGamma, skeletonWeight;
  bool amp;
  int64_t seed;
};

struct TrainingState {
  std::shared_ptr<LoadedModule> model;
  std::vector<torch::Tensor> parameters;
  TrainingOptions options;
  std::unique_ptr<torch::optim::AdamW> optimizer;
  int64_t microSteps = 0;
  int64_t optimizerSteps = 0;
  std::mutex mutex;  // one step (or save/load) at a time
};

namespace {

// Soft-skeleton iterations of the clDice loss: enough to thin cracks up to ~10 px wide.
constexpr int kSoftSkeletonIterations = 5;

struct StepResult {
  double loss = 0, dice = 0, focal = 0, skeleton = 0, learningRate = 0, gradNorm = 0;
  int64_t optimizerSteps = 0;
  bool stepped = false;
};

struct Batch {
  torch::Tensor images;  // uint8 [B, 3, H, W]
  torch::Tensor masks;   // uint8 [B, H, W]
  PromptTensors prompts;
};

// Linear warm-up from 0 over `warmupSteps`, then cosine decay to minLearningRate at totalSteps.
double LearningRateAt(const TrainingOptions& o, int64_t step) {
  if (step < o.warmupSteps) return o.learningRate * static_cast<double>(step + 1) / o.warmupSteps;
  double span = static_cast<double>(std::max<int64_t>(1, o.totalSteps - o.warmupSteps));
  double progress = std::min(1.0, static_cast<double>(step - o.warmupSteps) / span);
  return o.minLearningRate +
         0.5 * (o.learningRate - o.minLearningRate) * (1.0 + std::cos(M_PI * progress));
}

// 1 − (2|P∩G| + 1) / (|P| + |G| + 1) per image, averaged.
torch::Tensor DiceLoss(const torch::Tensor& probabilities, const torch::Tensor& target) {
  std::vector<int64_t> dims{1, 2, 3};
  torch::Tensor intersection = (probabilities * target).sum(dims);
  torch::Tensor total = probabilities.sum(dims) + target.sum(dims);
  return (1 - (2 * intersection + 1) / (total + 1)).mean();
}

// Sigmoid focal loss (Lin et al.), averaged over pixels.
torch::Tensor FocalLoss(const torch::Tensor& logits, const torch::Tensor& probabilities,
                        const torch::Tensor& target, double alpha, double gamma) {
  torch::Tensor ce =
      at::binary_cross_entropy_with_logits(logits, target, {}, {}, at::Reduction::None);
  torch::Tensor pt = probabilities * target + (1 - probabilities) * (1 - target);
  torch::Tensor weight = alpha * target + (1 - alpha) * (1 - target);
  return (weight * ce * (1 - pt).pow(gamma)).mean();
}

// Scales the gradients so that their global L2 norm is at most maxNorm (torch's
// clip_grad_norm_: factor min(1, maxNorm / (norm + 1e-6))); returns the norm before clipping.
double ClipGradNorm(const std::vector<torch::Tensor>& parameters, double maxNorm) {
  std::vector<torch::Tensor> norms;
  for (const auto& param : parameters)
    if (param.grad().defined()) norms.push_back(param.grad().detach().norm(2));
  if (norms.empty()) return 0.0;
  torch::Tensor total = torch::stack(norms).norm(2);
  if (maxNorm > 0) {
    torch::Tensor factor = torch::clamp(maxNorm / (total + 1e-6), c10::nullopt, 1.0);
    for (const auto& param : parameters)
      if (param.grad().defined()) param.grad().detach().mul_(factor);
  }
  return total.item<double>();
}

// Soft morphology of the clDice paper (Shit et al. 2021): erosion as the minimum of a vertical
// and a horizontal 3-pixel min-pool, dilation as a 3×3 max-pool.
torch::Tensor SoftErode(const torch::Tensor& x) {
  torch::Tensor vertical = -at::max_pool2d(-x, {3, 1}, {1, 1}, {1, 0});
  torch::Tensor horizontal = -at::max_pool2d(-x, {1, 3}, {1, 1}, {0, 1});
  return torch::min(vertical, horizontal);
}

torch::Tensor SoftDilate(const torch::Tensor& x) {
  return at::max_pool2d(x, {3, 3}, {1, 1}, {1, 1});
}

torch::Tensor SoftSkeleton(torch::Tensor x) {
  torch::Tensor skeleton = torch::relu(x - SoftDilate(SoftErode(x)));
  for (int i = 0; i < kSoftSkeletonIterations; ++i) {
    x = SoftErode(x);
    torch::Tensor delta = torch::relu(x - SoftDilate(SoftErode(x)));
    skeleton = skeleton + torch::relu(delta - skeleton * delta);
  }
  return skeleton;
}

// 1 − clDice between soft skeletons and the masks they lie in.
torch::Tensor SoftClDiceLoss(const torch::Tensor& probabilities, const torch::Tensor& target) {
  torch::Tensor predictedSkeleton = SoftSkeleton(probabilities);
  torch::Tensor targetSkeleton = SoftSkeleton(target);
  torch::Tensor precision =
      ((predictedSkeleton * target).sum() + 1) / (predictedSkeleton.sum() + 1);
  torch::Tensor sensitivity =
      ((targetSkeleton * probabilities).sum() + 1) / (targetSkeleton.sum() + 1);
  return 1 - 2 * precision * sensitivity / (precision + sensitivity);
}

// Puts the module in training mode for the scope of a step, back to evaluation mode after.
class TrainingModeScope {
 public:
  explicit TrainingModeScope(torch::jit::Module& module) : module_(module) { module_.train(true); }
  ~TrainingModeScope() { module_.train(false); }

 private:
  torch::jit::Module& module_;
};

StepResult RunStep(TrainingState& state, const Batch& batch) {
  std::lock_guard<std::mutex> lock(state.mutex);
  const TrainingOptions& o = state.options;
  LoadedModule& model = *state.model;
  TrainingModeScope training(model.module);

  int64_t batchSize = batch.images.size(0);
  int64_t height = batch.images.size(2), width = batch.images.size(3);
  torch::Tensor lowRes;
  {
    AutocastScope autocast(o.amp, model.device);
    c10::IValue output = model.module.forward(
        {batch.images.to(model.device), batch.prompts.coords.to(model.device),
         batch.prompts.labels.to(model.device), batch.prompts.imageIndex.to(model.device)});
    lowRes = output.toTupleRef().elements()[0].toTensor().to(torch::kFloat);
  }
  torch::Tensor logits =
      UpsampledUnion(lowRes, PromptsPerImage(batch.prompts.imageIndex, batchSize), height, width);
  torch::Tensor target = batch.masks.to(model.device).to(torch::kFloat).unsqueeze(1);
  torch::Tensor probabilities = torch::sigmoid(logits);
  torch::Tensor dice = DiceLoss(probabilities, target);
  torch::Tensor focal = FocalLoss(logits, probabilities, target, o.focalAlpha, o.focalGamma);
  torch::Tensor loss = o.diceWeight * dice + o.focalWeight * focal;
  torch::Tensor skeleton;
  if (o.skeletonWeight > 0) {
    skeleton = SoftClDiceLoss(probabilities, target);
    loss = loss + o.skeletonWeight * skeleton;
  }
  (loss / static_cast<double>(o.gradientAccumulation)).backward();

  StepResult result;
  result.loss = loss.item<double>();
  result.dice = dice.item<double>();
  result.focal = focal.item<double>();
  result.skeleton = skeleton.defined() ? skeleton.item<double>() : 0.0;
  result.learningRate = LearningRateAt(o, state.optimizerSteps);
  state.microSteps += 1;
  if (state.microSteps % o.gradientAccumulation == 0) {
    result.gradNorm = ClipGradNorm(state.parameters, o.maxGradNorm);
    for (auto& group : state.optimizer->param_groups())
      static_cast<torch::optim::AdamWOptions&>(group.options()).lr(result.learningRate);
    state.optimizer->step();
    state.optimizer->zero_grad();
    state.optimizerSteps += 1;
    result.stepped = true;
  }
  result.optimizerSteps = state.optimizerSteps;
  return result;
}

double NumberOption(const Napi::Object& options, const char* name) {
  Napi::Value value = options.Get(name);
  if (!value.IsNumber() || !std::isfinite(value.As<Napi::Number>().DoubleValue()))
    throw Napi::TypeError::New(options.Env(),
                               std::string("trainer option ") + name + " must be a finite number");
  return value.As<Napi::Number>().DoubleValue();
}

int64_t CountOption(const Napi::Object& options, const char* name, int64_t minimum) {
  double value = NumberOption(options, name);
  if (value != std::floor(value) || value < static_cast<double>(minimum))
    throw Napi::TypeError::New(options.Env(),
                               std::string("trainer option ") + name +
                                   " must be an integer >= " + std::to_string(minimum));
  return static_cast<int64_t>(value);
}

TrainingOptions OptionsFromJs(const Napi::Value& value) {
  if (!value.IsObject())
    throw Napi::TypeError::New(value.Env(), "trainer options must be an object");
  Napi::Object o = value.As<Napi::Object>();
  Napi::Value betas = o.Get("betas");
  if (!betas.IsArray() || betas.As<Napi::Array>().Length() != 2)
    throw Napi::TypeError::New(value.Env(), "trainer option betas must be [beta1, beta2]");
  Napi::Value amp = o.Get("amp");
  if (!amp.IsBoolean())
    throw Napi::TypeError::New(value.Env(), "trainer option amp must be a boolean");
  return {
      NumberOption(o, "learningRate"),
      NumberOption(o, "minLearningRate"),
      NumberOption(o, "weightDecay"),
      betas.As<Napi::Array>().Get(0u).As<Napi::Number>().DoubleValue(),
      betas.As<Napi::Array>().Get(1u).As<Napi::Number>().DoubleValue(),
      NumberOption(o, "eps"),
      CountOption(o, "warmupSteps", 0),
      CountOption(o, "totalSteps", 1),
      CountOption(o, "gradientAccumulation", 1),
      NumberOption(o, "maxGradNorm"),
      NumberOption(o, "diceWeight"),
      NumberOption(o, "focalWeight"),
      NumberOption(o, "focalAlpha"),
      NumberOption(o, "focalGamma"),
      NumberOption(o, "skeletonWeight"),
      amp.As<Napi::Boolean>(),
      CountOption(o, "seed", 0),
  };
}

Batch BatchFromJs(const Napi::Value& value) {
  Napi::Env env = value.Env();
  if (!value.IsObject()) throw Napi::TypeError::New(env, "batch must be {images, masks, prompts}");
  Napi::Object object = value.As<Napi::Object>();
  Batch batch;
  batch.images = TensorFromJs(object.Get("images"), torch::kUInt8, 4, "batch.images");
  batch.masks = TensorFromJs(object.Get("masks"), torch::kUInt8, 3, "batch.masks");
  int64_t batchSize = batch.images.size(0);
  if (batch.images.size(1) != 3 || batchSize < 1)
    throw Napi::TypeError::New(env, "batch.images must be [B, 3, H, W] with B >= 1");
  if (batch.masks.size(0) != batchSize || batch.masks.size(1) != batch.images.size(2) ||
      batch.masks.size(2) != batch.images.size(3))
    throw Napi::TypeError::New(env, "batch.masks " + c10::str(batch.masks.sizes()) +
                                        " must be [B, H, W] of images " +
                                        c10::str(batch.images.sizes()));
  batch.prompts = PromptsFromJs(object.Get("prompts"), batchSize, "batch.prompts");
  for (const auto& members : PromptsPerImage(batch.prompts.imageIndex, batchSize))
    if (members.empty())
      throw Napi::TypeError::New(env, "batch.prompts: every image needs at least one prompt");
  return batch;
}

std::string StringArg(const Napi::CallbackInfo& info, const char* name) {
  if (info.Length() < 1 || !info[0].IsString())
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a string");
  return info[0].As<Napi::String>();
}

}  // namespace

void TrainerWrap::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function constructor =
      DefineClass(env, "Trainer",
                  {
                      InstanceMethod<&TrainerWrap::Step>("step"),
                      InstanceAccessor<&TrainerWrap::OptimizerSteps>("optimizerSteps"),
                      InstanceMethod<&TrainerWrap::SaveState>("saveState"),
                      InstanceMethod<&TrainerWrap::LoadState>("loadState"),
                  });
  GetAddonData(env).trainer = Napi::Persistent(constructor);
  exports.Set("createTrainer",
              Napi::Function::New(
                  env,
                  [](const Napi::CallbackInfo& info) -> Napi::Value {
                    return GetAddonData(info.Env()).trainer.New({info[0], info[1]});
                  },
                  "createTrainer"));
}

TrainerWrap::TrainerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TrainerWrap>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsObject())
    throw Napi::TypeError::New(env, "createTrainer(module, options)");
  auto model = Napi::ObjectWrap<TorchModuleWrap>::Unwrap(info[0].As<Napi::Object>())->State(env);
  TrainingOptions options = OptionsFromJs(info[1]);
  state_ = std::make_shared<TrainingState>();
  state_->model = model;
  state_->options = options;
  for (const auto& param : model->module.parameters())
    if (param.requires_grad()) state_->parameters.push_back(param);
  if (state_->parameters.empty())
    throw Napi::Error::New(env, "createTrainer: the module has no parameter that requires grad");
  torch::manual_seed(static_cast<uint64_t>(options.seed));
  state_->optimizer = std::make_unique<torch::optim::AdamW>(
      state_->parameters, torch::optim::AdamWOptions(options.learningRate)
                              .betas({options.beta1, options.beta2})
                              .eps(options.eps)
                              .weight_decay(options.weightDecay));
}

Napi::Value TrainerWrap::Step(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1) throw Napi::TypeError::New(env, "step(batch)");
  Batch batch = BatchFromJs(info[0]);
  auto state = state_;
  return AsyncJob<StepResult>::Start(
      env, [state, batch]() { return RunStep(*state, batch); },
      [](Napi::Env env, StepResult& r) -> Napi::Value {
        Napi::Object result = Napi::Object::New(env);
        result.Set("loss", r.loss);
        result.Set("dice", r.dice);
        result.Set("focal", r.focal);
        result.Set("skeleton", r.skeleton);
        result.Set("learningRate", r.learningRate);
        result.Set("optimizerSteps", static_cast<double>(r.optimizerSteps));
        result.Set("stepped", r.stepped);
        result.Set("gradNorm", r.gradNorm);
        return result;
      });
}

Napi::Value TrainerWrap::OptimizerSteps(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> lock(state_->mutex);
  return Napi::Number::New(info.Env(), static_cast<double>(state_->optimizerSteps));
}

Napi::Value TrainerWrap::SaveState(const Napi::CallbackInfo& info) {
  std::string path = StringArg(info, "path");
  auto state = state_;
  return AsyncJob<bool>::Start(
      info.Env(),
      [state, path]() {
        std::lock_guard<std::mutex> lock(state->mutex);
        torch::serialize::OutputArchive archive;
        state->optimizer->save(archive);
        archive.write("micro_steps", torch::tensor(state->microSteps));
        archive.write("optimizer_steps", torch::tensor(state->optimizerSteps));
        std::string temp = path + ".tmp";  // then renamed: a crash never leaves half a file
        archive.save_to(temp);
        if (std::rename(temp.c_str(), path.c_str()) != 0)
          throw std::runtime_error("cannot write '" + path + "'");
        return true;
      },
      [](Napi::Env env, bool&) -> Napi::Value { return env.Undefined(); });
}

Napi::Value TrainerWrap::LoadState(const Napi::CallbackInfo& info) {
  std::string path = StringArg(info, "path");
  auto state = state_;
  return AsyncJob<bool>::Start(
      info.Env(),
      [state, path]() {
        std::lock_guard<std::mutex> lock(state->mutex);
        torch::serialize::InputArchive archive;
        try {
          archive.load_from(path);
          state->optimizer->load(archive);
          torch::Tensor micro, steps;
          archive.read("micro_steps", micro);
          archive.read("optimizer_steps", steps);
          state->microSteps = micro.item<int64_t>();
          state->optimizerSteps = steps.item<int64_t>();
        } catch (const c10::Error& e) {
          throw std::runtime_error("cannot load trainer state '" + path +
                                   "': " + e.what_without_backtrace());
        }
        return true;
      },
      [](Napi::Env env, bool&) -> Napi::Value { return env.Undefined(); });
}

}  // namespace crackseg
