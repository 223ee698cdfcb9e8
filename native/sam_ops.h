// The SAM 2.1 steps shared by prediction and training, over a module that follows
// docs/model-interface.md (encode_image, decode, forward).
#pragma once

#include <torch/script.h>

#include <utility>
#include <vector>

namespace crackseg {

// A SAM prompt set: N prompts of P points in model-input pixels, each for one batch image.
struct PromptTensors {
  torch::Tensor coords;      // float32 [N, P, 2]
  torch::Tensor labels;      // int32 [N, P]
  torch::Tensor imageIndex;  // int64 [N], each in [0, batchSize)
};

// encode_image of interleaved RGB images (uint8 [B,H,W,3] on the module's device, as decoded:
// the layout is changed here, on the device) → (image_embed, high_res_0, high_res_1), in the
// module's dtype.
std::vector<c10::IValue> EncodeImages(torch::jit::Module& module, const torch::Tensor& images);

// decode(...) of one host prompt set, uploaded to `device`, single-mask → (low-res logits
// [N,1,s,s] float32, iou [N,1] float32), on the device.
std::pair<torch::Tensor, torch::Tensor> DecodePrompts(torch::jit::Module& module,
                                                      const std::vector<c10::IValue>& embeddings,
                                                      const PromptTensors& prompts,
                                                      const c10::Device& device);

// For each of `batchSize` images, the indices of its prompts (from a CPU imageIndex [N]).
std::vector<std::vector<int64_t>> PromptsPerImage(const torch::Tensor& imageIndex,
                                                  int64_t batchSize);

// Low-res logits [N,1,s,s] → per-image union [B,1,H,W]: each prompt's logits upsampled bilinearly
// to H×W (the official predictor's post-processing), then the maximum over the image's prompts,
// so union > 0 is the OR of the prompts' masks; -inf for an image without prompts. Differentiable;
// no host sync (one non-blocking upload of the prompt order).
torch::Tensor UpsampledUnion(const torch::Tensor& lowResLogits,
                             const std::vector<std::vector<int64_t>>& promptsPerImage,
                             int64_t height, int64_t width);

}  // namespace crackseg
