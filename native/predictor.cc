// predictMasks(module, images, promptSets, options): encode a batch once, decode every prompt set
// from the same embeddings, and return masks at the images' resolution.
#include "predictor.h"

#include <limits>
#include <optional>
#include <tuple>

#include "async_job.h"
#include "auto_masks.h"
#include "device_transfer.h"
#include "errors.h"
#include "js_values.h"
#include "sam_ops.h"
#include "tensor_store.h"
#include "torch_module.h"

namespace crackseg {
namespace {

struct PredictOptions {
  bool probabilities = false;
  bool lowResLogits = false;
  bool hold = false;  // masks and probabilities held natively (tensor_store.h), not copied to JS
  // Per prompt set: none, or the automatic mask generator's selection (auto_masks.h).
  std::vector<std::optional<AutoMaskFilter>> automatic;
};

// One prompt set's predictions, on the device until downloaded.
struct PredictionSet {
  torch::Tensor masks;          // uint8 [B, H, W]
  torch::Tensor probabilities;  // float [B, H, W], when asked for
  torch::Tensor iou;            // float [N, 1], the groups' prompts in order
  torch::Tensor lowResLogits;   // float [N, 1, s, s], when asked for
  torch::Tensor kept;           // uint8 [N]: the prompts whose masks made the union (automatic)

  std::vector<torch::Tensor*> Fields() {
    return {&masks, &probabilities, &iou, &lowResLogits, &kept};
  }
};

bool BoolOption(const Napi::Object& options, const char* name, bool fallback) {
  Napi::Value value = options.Get(name);
  if (value.IsUndefined()) return fallback;
  if (!value.IsBoolean())
    ThrowTypeError(TypeCode::kArgument, std::string("options.") + name + " must be a boolean");
  return value.As<Napi::Boolean>();
}

// The prompts [start, start + count) of a group.
PromptTensors Slice(const PromptTensors& group, int64_t start, int64_t count) {
  return {group.coords.narrow(0, start, count), group.labels.narrow(0, start, count),
          group.imageIndex.narrow(0, start, count)};
}

// A chunk's prompts decoded; when they are all of one image of several, from that image's
// embeddings alone, so that the decoder reads its high-res features once for every prompt rather
// than copying them per prompt (`_high_res_per_prompt` in scripts/crackseg_sam2/model.py). The
// masks are the same either way.
std::pair<torch::Tensor, torch::Tensor> DecodeChunk(LoadedModule& model,
                                                    const std::vector<c10::IValue>& embeddings,
                                                    const PromptTensors& chunk) {
  const int64_t image = chunk.imageIndex[0].item<int64_t>();
  if (embeddings[0].toTensor().size(0) == 1 || !chunk.imageIndex.eq(image).all().item<bool>())
    return DecodePrompts(model.module, embeddings, chunk, model.device);
  std::vector<c10::IValue> own;
  for (const c10::IValue& embedding : embeddings)
    own.emplace_back(embedding.toTensor().narrow(0, image, 1));
  PromptTensors prompts{chunk.coords, chunk.labels, torch::zeros_like(chunk.imageIndex)};
  return DecodePrompts(model.module, own, prompts, model.device);
}

// An automatic prompt set: its prompts decoded `pointsPerBatch` at a time, each mask scored at
// the image's size (ScoreMasks), the passing ones' boxes suppressed per image (BoxNms); the union
// is over the kept masks alone. Sets `kept` and appends to `ious` and `lowResLogits` (all prompts).
torch::Tensor AutomaticUnion(LoadedModule& model, const std::vector<c10::IValue>& embeddings,
                             const std::vector<PromptTensors>& groups, int64_t batchSize,
                             int64_t height, int64_t width, const AutoMaskFilter& filter,
                             const PredictOptions& options, std::vector<torch::Tensor>& ious,
                             std::vector<torch::Tensor>& lowResLogits, torch::Tensor& kept) {
  // The passing masks of every chunk: low-res logits, boxes, predicted IoU, image, prompt row.
  std::vector<torch::Tensor> passedLogits, passedBoxes, passedIou, passedImage, passedRow;
  int64_t row = 0;
  for (const PromptTensors& group : groups) {
    for (int64_t start = 0; start < group.coords.size(0); start += filter.pointsPerBatch) {
      int64_t count = std::min(filter.pointsPerBatch, group.coords.size(0) - start);
      PromptTensors chunk = Slice(group, start, count);
      auto [lowRes, iou] = DecodeChunk(model, embeddings, chunk);
      torch::Tensor logits =
          at::upsample_bilinear2d(lowRes, {height, width}, /*align_corners=*/false).squeeze(1);
      MaskScores scores = ScoreMasks(logits, iou, filter);
      torch::Tensor passed = scores.passed.nonzero().reshape({-1});
      passedLogits.push_back(lowRes.index_select(0, passed));
      passedBoxes.push_back(scores.boxes.index_select(0, passed));
      passedIou.push_back(iou.reshape({-1}).index_select(0, passed));
      passedImage.push_back(Upload(chunk.imageIndex, model.device).index_select(0, passed));
      passedRow.push_back(passed + row);
      ious.push_back(iou);
      if (options.lowResLogits) lowResLogits.push_back(lowRes);
      row += count;
    }
  }
  kept = torch::zeros({row}, torch::kUInt8);
  if (passedRow.empty()) return torch::Tensor();
  // The host waits once per chunk (which masks passed: their count sizes what is kept) and once
  // for the passing masks' boxes and scores, which the suppression reads.
  std::vector<torch::Tensor> host = Download({torch::cat(passedBoxes), torch::cat(passedIou),
                                              torch::cat(passedImage), torch::cat(passedRow)});
  std::vector<int64_t> survivors = BoxNms(host[0], host[1], host[2], filter.boxNmsThreshold);
  if (survivors.empty()) return torch::Tensor();
  torch::Tensor chosen = torch::tensor(survivors, torch::kLong);
  kept.index_fill_(0, host[3].index_select(0, chosen), 1);
  torch::Tensor chosenLogits =
      torch::cat(passedLogits).index_select(0, Upload(chosen, model.device));
  return UpsampledUnion(chosenLogits, PromptsPerImage(host[2].index_select(0, chosen), batchSize),
                        height, width)
      .squeeze(1);
}

// A prompt set decoded group by group (a group's prompts have one point count): each image's
// masks and probabilities are the union over all its prompts, whatever their group (or over the
// masks an automatic set keeps).
PredictionSet Predict(LoadedModule& model, const std::vector<c10::IValue>& embeddings,
                      const std::vector<PromptTensors>& groups, int64_t batchSize, int64_t height,
                      int64_t width, const std::optional<AutoMaskFilter>& automatic,
                      const PredictOptions& options) {
  auto onDevice = torch::TensorOptions().device(model.device);
  torch::Tensor logits;  // float [B, H, W]: each image's maximum over its prompts
  std::vector<torch::Tensor> ious{torch::zeros({0, 1}, onDevice)};
  // The decoder's masks are 4× the image embedding's side.
  int64_t maskSize = 4 * embeddings[0].toTensor().size(-1);
  std::vector<torch::Tensor> lowResLogits{torch::zeros({0, 1, maskSize, maskSize}, onDevice)};
  PredictionSet result;
  if (automatic)
    logits = AutomaticUnion(model, embeddings, groups, batchSize, height, width, *automatic,
                            options, ious, lowResLogits, result.kept);
  for (const PromptTensors& group : groups) {
    if (automatic || group.coords.size(0) == 0) continue;
    auto [lowRes, iou] = DecodePrompts(model.module, embeddings, group, model.device);
    torch::Tensor groupUnion =
        UpsampledUnion(lowRes, PromptsPerImage(group.imageIndex, batchSize), height, width);
    logits =
        logits.defined() ? torch::maximum(logits, groupUnion.squeeze(1)) : groupUnion.squeeze(1);
    ious.push_back(iou);
    if (options.lowResLogits) lowResLogits.push_back(lowRes);
  }
  // -inf for an image without prompts: an empty mask, probabilities 0.
  if (!logits.defined())
    logits =
        torch::full({batchSize, height, width}, -std::numeric_limits<float>::infinity(), onDevice);
  result.masks = (logits > 0).to(torch::kUInt8);
  if (options.probabilities) result.probabilities = torch::sigmoid(logits);
  result.iou = torch::cat(ious);
  if (options.lowResLogits) result.lowResLogits = torch::cat(lowResLogits);
  return result;
}

// Every set's tensors to the host, with one wait for the device.
void DownloadAll(std::vector<PredictionSet>& sets) {
  std::vector<torch::Tensor*> fields;
  for (auto& set : sets)
    for (torch::Tensor* field : set.Fields()) fields.push_back(field);
  std::vector<torch::Tensor> onDevice;
  for (torch::Tensor* field : fields) onDevice.push_back(*field);
  std::vector<torch::Tensor> host = Download(onDevice);
  for (size_t i = 0; i < fields.size(); ++i) *fields[i] = std::move(host[i]);
}

// Same-sized images as one uint8 [B, H, W, 3] host tensor, pinned when bound for CUDA (so the
// upload copies it no further).
torch::Tensor Batched(const std::vector<torch::Tensor>& images, const c10::Device& device) {
  std::vector<int64_t> shape{static_cast<int64_t>(images.size())};
  for (int64_t size : images.front().sizes()) shape.push_back(size);
  torch::Tensor batch = torch::empty(
      shape, torch::TensorOptions().dtype(torch::kUInt8).pinned_memory(device.is_cuda()));
  for (size_t b = 0; b < images.size(); ++b) batch[static_cast<int64_t>(b)].copy_(images[b]);
  return batch;
}

}  // namespace

Napi::Value PredictMasks(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    if (info.Length() < 3 || !info[2].IsArray())
      ThrowTypeError(TypeCode::kArgument, "predictMasks(module, images, promptSets, options?)");
    auto state = TorchModuleWrap::FromValue(info[0], "module");
    // Read in place by the job (JS arrays, or tensors held by a sample thread), which gathers
    // them into one batch (pinned for CUDA) off the JS thread; the arrays are referenced until
    // the job is done.
    if (!info[1].IsArray() || info[1].As<Napi::Array>().Length() < 1)
      ThrowTypeError(
          TypeCode::kArgument,
          "images must be a non-empty array of uint8 [H, W, 3] (or their tensor handles)");
    Napi::Array list = info[1].As<Napi::Array>();
    std::vector<torch::Tensor> views;
    std::vector<Napi::Value> keepAlive;
    for (uint32_t i = 0; i < list.Length(); ++i) {
      std::string what = "images[" + std::to_string(i) + "]";
      torch::Tensor view = HeldOrViewOfJs(list.Get(i), torch::kUInt8, 3, what);
      if (view.size(2) != 3 || (!views.empty() && view.sizes() != views.front().sizes()))
        ThrowRangeError(RangeCode::kShape,
                        what + ": must be uint8 [H, W, 3] of the first image's size, got " +
                            c10::str(view.sizes()));
      views.push_back(view);  // a held image's tensor lives on in `view` even if released now
      if (!list.Get(i).IsNumber()) keepAlive.push_back(list.Get(i).As<Napi::Object>().Get("data"));
    }
    int64_t batchSize = static_cast<int64_t>(views.size());
    int64_t height = views.front().size(0);
    int64_t width = views.front().size(1);
    Napi::Array sets = info[2].As<Napi::Array>();
    std::vector<std::vector<PromptTensors>> promptSets;
    for (uint32_t i = 0; i < sets.Length(); ++i) {
      std::string what = "promptSets[" + std::to_string(i) + "]";
      if (!sets.Get(i).IsArray())
        ThrowTypeError(TypeCode::kArgument, what + " must be an array of prompt groups");
      Napi::Array groups = sets.Get(i).As<Napi::Array>();
      promptSets.emplace_back();
      for (uint32_t g = 0; g < groups.Length(); ++g)
        promptSets.back().push_back(
            PromptsFromJs(groups.Get(g), batchSize, what + "[" + std::to_string(g) + "]"));
    }
    PredictOptions options;
    if (info.Length() > 3 && !info[3].IsUndefined()) {
      if (!info[3].IsObject() || info[3].IsArray())
        ThrowTypeError(TypeCode::kArgument, "predictMasks options must be an object");
      Napi::Object object = info[3].As<Napi::Object>();
      options.probabilities = BoolOption(object, "probabilities", false);
      options.lowResLogits = BoolOption(object, "lowResLogits", false);
      options.hold = BoolOption(object, "hold", false);
      Napi::Value automatic = object.Get("automatic");
      if (!automatic.IsUndefined()) {
        if (!automatic.IsArray() || automatic.As<Napi::Array>().Length() != sets.Length())
          ThrowTypeError(
              TypeCode::kArgument,
              "options.automatic must be an array with one entry (null or a filter) per set");
        Napi::Array filters = automatic.As<Napi::Array>();
        for (uint32_t i = 0; i < filters.Length(); ++i) {
          Napi::Value filter = filters.Get(i);
          options.automatic.push_back(
              filter.IsNull() ? std::nullopt
                              : std::optional<AutoMaskFilter>(AutoMaskFilterFromJs(
                                    filter, "options.automatic[" + std::to_string(i) + "]")));
        }
      }
    }
    options.automatic.resize(promptSets.size());

    using Result = std::vector<PredictionSet>;
    return AsyncJob<Result>::Start(
        env,
        [state, views, promptSets, options, batchSize, height, width]() -> Result {
          std::shared_lock<std::shared_mutex> reading(state->access);
          // NoGrad, not InferenceMode: the TorchScript executor may have specialised these methods
          // for training (differentiable graphs), which refuse inference tensors.
          torch::NoGradGuard noGrad;
          // Everything is queued on the device first; the host waits once, for the download.
          std::vector<c10::IValue> embeddings =
              EncodeImages(state->module, Upload(Batched(views, state->device), state->device));
          Result results;
          for (size_t s = 0; s < promptSets.size(); ++s)
            results.push_back(Predict(*state, embeddings, promptSets[s], batchSize, height, width,
                                      options.automatic[s], options));
          DownloadAll(results);
          return results;
        },
        [options](Napi::Env env, Result& results) -> Napi::Value {
          auto perImage = options.hold ? HoldRows : TensorRowsToJs;
          Napi::Array array = Napi::Array::New(env, results.size());
          for (size_t i = 0; i < results.size(); ++i) {
            Napi::Object set = Napi::Object::New(env);
            set.Set("masks", perImage(env, results[i].masks));
            set.Set("iou", TensorToJs(env, results[i].iou));
            if (options.probabilities)
              set.Set("probabilities", perImage(env, results[i].probabilities));
            if (options.lowResLogits)
              set.Set("lowResLogits", TensorToJs(env, results[i].lowResLogits));
            if (options.automatic[i]) set.Set("kept", TensorToJs(env, results[i].kept));
            array.Set(i, set);
          }
          return array;
        },
        keepAlive);
  });
}

}  // namespace crackseg
