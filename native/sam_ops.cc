#include "sam_ops.h"

#include <torch/version.h>

#include <limits>

#ifdef CRACKSEG_WITH_CUDA
#include <ATen/autocast_mode.h>
#endif

namespace crackseg {

#ifdef CRACKSEG_WITH_CUDA
// torch 2.4 replaced the CUDA-only autocast switches by per-device-type ones.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
static void SetCudaAutocast(bool enabled) {
  at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
  at::autocast::set_autocast_enabled(at::kCUDA, enabled);
}
#else
static void SetCudaAutocast(bool enabled) {
  at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
  at::autocast::set_enabled(enabled);
}
#endif
#endif

AutocastScope::AutocastScope(bool enabled, const c10::Device& device)
    : active_(enabled && device.is_cuda()) {
#ifdef CRACKSEG_WITH_CUDA
  if (active_) SetCudaAutocast(true);
#endif
}

AutocastScope::~AutocastScope() {
#ifdef CRACKSEG_WITH_CUDA
  if (!active_) return;
  SetCudaAutocast(false);
  at::autocast::clear_cache();
#endif
}

std::vector<c10::IValue> EncodeImages(torch::jit::Module& module, const torch::Tensor& images) {
  c10::IValue encoded = module.get_method("encode_image")({images});
  if (!encoded.isTuple() || encoded.toTupleRef().elements().size() != 3)
    throw std::runtime_error("encode_image must return (image_embed, high_res_0, high_res_1)");
  const auto& elements = encoded.toTupleRef().elements();
  return std::vector<c10::IValue>(elements.begin(), elements.end());
}

std::pair<torch::Tensor, torch::Tensor> DecodePrompts(torch::jit::Module& module,
                                                      const std::vector<c10::IValue>& embeddings,
                                                      const PromptTensors& prompts,
                                                      const c10::Device& device) {
  std::vector<c10::IValue> inputs(embeddings);
  inputs.emplace_back(prompts.coords.to(device));
  inputs.emplace_back(prompts.labels.to(device));
  inputs.emplace_back(prompts.imageIndex.to(device));
  inputs.emplace_back(c10::IValue());  // no mask input
  inputs.emplace_back(false);          // single mask per prompt
  c10::IValue decoded = module.get_method("decode")(inputs);
  if (!decoded.isTuple() || decoded.toTupleRef().elements().size() < 2)
    throw std::runtime_error("decode must return (low_res_logits, iou, object_score_logits)");
  const auto& outputs = decoded.toTupleRef().elements();
  return {outputs[0].toTensor().to(torch::kFloat), outputs[1].toTensor().to(torch::kFloat)};
}

std::vector<std::vector<int64_t>> PromptsPerImage(const torch::Tensor& imageIndex,
                                                  int64_t batchSize) {
  std::vector<std::vector<int64_t>> members(batchSize);
  auto index = imageIndex.accessor<int64_t, 1>();
  for (int64_t n = 0; n < index.size(0); ++n) members[index[n]].push_back(n);
  return members;
}

// Prompts upsampled at once per image.
constexpr size_t kChunk = 16;

torch::Tensor UpsampledUnion(const torch::Tensor& lowResLogits,
                             const std::vector<std::vector<int64_t>>& promptsPerImage,
                             int64_t height, int64_t width) {
  auto options = lowResLogits.options();
  std::vector<torch::Tensor> unions;
  for (const auto& members : promptsPerImage) {
    if (members.empty()) {
      unions.push_back(
          torch::full({1, height, width}, -std::numeric_limits<float>::infinity(), options));
      continue;
    }
    // A running maximum over chunks of prompts bounds memory at kChunk full-size maps.
    torch::Tensor running;
    for (size_t start = 0; start < members.size(); start += kChunk) {
      std::vector<int64_t> chunk(members.begin() + start,
                                 members.begin() + std::min(members.size(), start + kChunk));
      torch::Tensor index = torch::tensor(chunk, torch::kLong).to(lowResLogits.device());
      // F.interpolate(mode="bilinear", align_corners=False) to a fixed size.
      torch::Tensor upsampled = at::upsample_bilinear2d(lowResLogits.index_select(0, index),
                                                        {height, width}, /*align_corners=*/false);
      torch::Tensor maximum = upsampled.amax(0);
      running = running.defined() ? torch::maximum(running, maximum) : maximum;
    }
    unions.push_back(running);
  }
  return torch::stack(unions);
}

}  // namespace crackseg
