#include "sam_ops.h"

#include <limits>
#include <sstream>
#include <string>

#include "device_transfer.h"
#include "errors.h"

namespace crackseg {

namespace {

// What a method returned, for errors: a tensor's shape, else the value's kind.
std::string Describe(const c10::IValue& value) {
  std::ostringstream out;
  if (value.isTensor())
    out << "a tensor of shape " << value.toTensor().sizes();
  else
    out << "a " << value.tagKind();
  return out.str();
}

// The elements of a method's tuple result; `count` of them, else an error saying what came back.
std::vector<c10::IValue> Outputs(const c10::IValue& result, const char* method, size_t count,
                                 const char* expected) {
  if (!result.isTuple() || result.toTupleRef().elements().size() != count)
    ThrowError(ErrorCode::kModule,
               std::string(method) + " returned " +
                   (result.isTuple()
                        ? "a tuple of " + std::to_string(result.toTupleRef().elements().size())
                        : Describe(result)) +
                   ", expected " + expected);
  const auto& elements = result.toTupleRef().elements();
  return std::vector<c10::IValue>(elements.begin(), elements.end());
}

// Output `name` of `method` when it is a tensor of `dims` dimensions whose leading sizes are
// `leading`; else an error naming the method, the output and what was expected.
torch::Tensor Checked(const c10::IValue& value, const char* method, const char* name, int64_t dims,
                      const std::vector<int64_t>& leading, const std::string& expected) {
  bool ok = value.isTensor() && value.toTensor().dim() == dims;
  for (size_t d = 0; ok && d < leading.size(); ++d) ok = value.toTensor().size(d) == leading[d];
  if (!ok)
    ThrowError(ErrorCode::kModule, std::string(method) + " returned " + name + " as " +
                                       Describe(value) + ", expected " + expected +
                                       " (docs/model-interface.md)");
  return value.toTensor();
}

}  // namespace

std::vector<c10::IValue> EncodeImages(torch::jit::Module& module, const torch::Tensor& images) {
  c10::IValue encoded =
      module.get_method("encode_image")({images.permute({0, 3, 1, 2}).contiguous()});
  std::vector<c10::IValue> elements =
      Outputs(encoded, "encode_image", 3,
              "(image_embed, high_res_0, high_res_1) (docs/model-interface.md)");
  const int64_t batch = images.size(0);
  const std::string expected = "[" + std::to_string(batch) + ", C, H, W] (one per image given)";
  const char* names[] = {"image_embed", "high_res_0", "high_res_1"};
  for (size_t i = 0; i < 3; ++i)
    Checked(elements[i], "encode_image", names[i], 4, {batch}, expected);
  return elements;
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
  const auto& outputs = Outputs(
      decoded, "decode", 3, "(low_res_logits, iou, object_score_logits) (docs/model-interface.md)");
  const int64_t count = prompts.coords.size(0);
  const std::string n = std::to_string(count);
  torch::Tensor logits = Checked(outputs[0], "decode", "low_res_logits", 4, {count, 1},
                                 "[" + n + ", 1, H, W] (one mask per prompt given)");
  torch::Tensor iou =
      Checked(outputs[1], "decode", "iou", 2, {count, 1}, "[" + n + ", 1] (one per prompt given)");
  return {logits.to(torch::kFloat), iou.to(torch::kFloat)};
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
