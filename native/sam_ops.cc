#include "sam_ops.h"

#include <limits>

#include "device_transfer.h"
#include "errors.h"

namespace crackseg {

std::vector<c10::IValue> EncodeImages(torch::jit::Module& module, const torch::Tensor& images) {
  c10::IValue encoded =
      module.get_method("encode_image")({images.permute({0, 3, 1, 2}).contiguous()});
  if (!encoded.isTuple() || encoded.toTupleRef().elements().size() != 3)
    ThrowError(ErrorCode::kModule,
               "encode_image must return (image_embed, high_res_0, high_res_1)");
  const auto& elements = encoded.toTupleRef().elements();
  return std::vector<c10::IValue>(elements.begin(), elements.end());
}

std::pair<torch::Tensor, torch::Tensor> DecodePrompts(torch::jit::Module& module,
                                                      const std::vector<c10::IValue>& embeddings,
                                                      const PromptTensors& prompts,
                                                      const c10::Device& device) {
  std::vector<c10::IValue> inputs(embeddings);
  inputs.emplace_back(Upload(prompts.coords, device));
  inputs.emplace_back(Upload(prompts.labels, device));
  inputs.emplace_back(Upload(prompts.imageIndex, device));
  inputs.emplace_back(c10::IValue());  // no mask input
  inputs.emplace_back(false);          // single mask per prompt
  c10::IValue decoded = module.get_method("decode")(inputs);
  if (!decoded.isTuple() || decoded.toTupleRef().elements().size() < 2)
    ThrowError(ErrorCode::kModule, "decode must return (low_res_logits, iou, object_score_logits)");
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
constexpr int64_t kChunk = 16;

torch::Tensor UpsampledUnion(const torch::Tensor& lowResLogits,
                             const std::vector<std::vector<int64_t>>& promptsPerImage,
                             int64_t height, int64_t width) {
  // The prompts in image order, so that each image's prompts are one slice of `sorted`.
  std::vector<int64_t> order;
  for (const auto& members : promptsPerImage)
    order.insert(order.end(), members.begin(), members.end());
  torch::Tensor sorted = lowResLogits.index_select(
      0, Upload(torch::tensor(order, torch::kLong), lowResLogits.device()));
  std::vector<torch::Tensor> unions;
  int64_t offset = 0;
  for (const auto& members : promptsPerImage) {
    int64_t count = static_cast<int64_t>(members.size());
    if (count == 0) {
      unions.push_back(torch::full({1, height, width}, -std::numeric_limits<float>::infinity(),
                                   lowResLogits.options()));
      continue;
    }
    // A running maximum over chunks of prompts bounds memory at kChunk full-size maps.
    torch::Tensor running;
    for (int64_t start = 0; start < count; start += kChunk) {
      // F.interpolate(mode="bilinear", align_corners=False) to a fixed size.
      torch::Tensor upsampled =
          at::upsample_bilinear2d(sorted.narrow(0, offset + start, std::min(kChunk, count - start)),
                                  {height, width}, /*align_corners=*/false);
      torch::Tensor maximum = upsampled.amax(0);
      running = running.defined() ? torch::maximum(running, maximum) : maximum;
    }
    unions.push_back(running);
    offset += count;
  }
  return torch::stack(unions);
}

}  // namespace crackseg
