// predictMasks(module, images, promptSets, options): encode a batch once, decode every prompt set
// from the same embeddings, and return masks at the images' resolution.
#include "predictor.h"

#include <tuple>

#include "async_job.h"
#include "errors.h"
#include "sam_ops.h"
#include "torch_module.h"

namespace crackseg {
namespace {

struct PredictOptions {
  bool probabilities = false;
  bool lowResLogits = false;
  bool mixedPrecision = true;  // bf16 autocast on CUDA; the CPU stays fp32
};

struct PredictionSet {
  torch::Tensor masks;          // uint8 [B, H, W]
  torch::Tensor probabilities;  // float [B, H, W], when asked for
  torch::Tensor iou;            // float [N, 1]
  torch::Tensor lowResLogits;   // float [N, 1, s, s], when asked for
};

bool BoolOption(const Napi::Object& options, const char* name, bool fallback) {
  Napi::Value value = options.Get(name);
  if (value.IsUndefined()) return fallback;
  if (!value.IsBoolean())
    throw Napi::TypeError::New(options.Env(),
                               std::string("options.") + name + " must be a boolean");
  return value.As<Napi::Boolean>();
}

PredictionSet Predict(LoadedModule& model, const std::vector<c10::IValue>& embeddings,
                      const PromptTensors& prompts, int64_t batchSize, int64_t height,
                      int64_t width, const PredictOptions& options) {
  PredictionSet result;
  if (prompts.coords.size(0) == 0) {
    result.masks = torch::zeros({batchSize, height, width}, torch::kUInt8);
    if (options.probabilities) result.probabilities = torch::zeros({batchSize, height, width});
    result.iou = torch::zeros({0, 1});
    // The decoder's masks are 4× the image embedding's side.
    int64_t maskSize = 4 * embeddings[0].toTensor().size(-1);
    if (options.lowResLogits) result.lowResLogits = torch::zeros({0, 1, maskSize, maskSize});
    return result;
  }
  torch::Tensor lowRes, iou;
  {
    AutocastScope autocast(options.mixedPrecision, model.device);
    std::tie(lowRes, iou) = DecodePrompts(model.module, embeddings, prompts, model.device);
  }
  torch::Tensor logits =
      UpsampledUnion(lowRes, PromptsPerImage(prompts.imageIndex, batchSize), height, width)
          .squeeze(1);
  result.masks = (logits > 0).to(torch::kUInt8).cpu();
  if (options.probabilities) result.probabilities = torch::sigmoid(logits).cpu();
  result.iou = iou.cpu();
  if (options.lowResLogits) result.lowResLogits = lowRes.cpu();
  return result;
}

}  // namespace

Napi::Value PredictMasks(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[2].IsArray())
    throw Napi::TypeError::New(env, "predictMasks(module, images, promptSets, options?)");
  auto state = TorchModuleWrap::FromValue(info[0], "module");
  return Guarded(env, [&]() -> Napi::Value {
    torch::Tensor images = TensorFromJs(info[1], torch::kUInt8, 4, "images");
    if (images.size(1) != 3 || images.size(0) < 1)
      throw Napi::TypeError::New(
          env, "images must be uint8 [B, 3, H, W] with B >= 1, got " + c10::str(images.sizes()));
    int64_t batchSize = images.size(0);
    Napi::Array sets = info[2].As<Napi::Array>();
    std::vector<PromptTensors> promptSets;
    for (uint32_t i = 0; i < sets.Length(); ++i)
      promptSets.push_back(
          PromptsFromJs(sets.Get(i), batchSize, "promptSets[" + std::to_string(i) + "]"));
    PredictOptions options;
    if (info.Length() > 3 && !info[3].IsUndefined()) {
      if (!info[3].IsObject() || info[3].IsArray())
        throw Napi::TypeError::New(env, "predictMasks options must be an object");
      Napi::Object object = info[3].As<Napi::Object>();
      options = {BoolOption(object, "probabilities", false),
                 BoolOption(object, "lowResLogits", false),
                 BoolOption(object, "mixedPrecision", true)};
    }

    using Result = std::vector<PredictionSet>;
    return AsyncJob<Result>::Start(
        env,
        [state, images, promptSets, options]() -> Result {
          std::shared_lock<std::shared_mutex> reading(state->access);
          // NoGrad, not InferenceMode: the TorchScript executor may have specialised these methods
          // for training (differentiable graphs), which refuse inference tensors.
          torch::NoGradGuard noGrad;
          std::vector<c10::IValue> embeddings;
          {
            AutocastScope autocast(options.mixedPrecision, state->device);
            embeddings = EncodeImages(state->module, images.to(state->device));
          }
          Result results;
          for (const PromptTensors& prompts : promptSets)
            results.push_back(Predict(*state, embeddings, prompts, images.size(0), images.size(2),
                                      images.size(3), options));
          return results;
        },
        [options](Napi::Env env, Result& results) -> Napi::Value {
          Napi::Array array = Napi::Array::New(env, results.size());
          for (size_t i = 0; i < results.size(); ++i) {
            Napi::Object set = Napi::Object::New(env);
            set.Set("masks", TensorToJs(env, results[i].masks));
            set.Set("iou", TensorToJs(env, results[i].iou));
            if (options.probabilities)
              set.Set("probabilities", TensorToJs(env, results[i].probabilities));
            if (options.lowResLogits)
              set.Set("lowResLogits", TensorToJs(env, results[i].lowResLogits));
            array.Set(i, set);
          }
          return array;
        });
  });
}

}  // namespace crackseg
