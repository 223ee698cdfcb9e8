#include "auto_masks.h"

#include <algorithm>
#include <numeric>

#include "errors.h"
#include "js_values.h"

namespace crackseg {

MaskScores ScoreMasks(const torch::Tensor& logits, const torch::Tensor& iou,
                      const AutoMaskFilter& filter) {
  const double offset = filter.stabilityOffset;
  torch::Tensor inner = (logits > offset).flatten(1).sum(1).to(torch::kFloat);
  torch::Tensor outer = (logits > -offset).flatten(1).sum(1).to(torch::kFloat);
  MaskScores scores;
  scores.stability = inner / outer;

  torch::Tensor masks = logits > 0;
  const int64_t height = masks.size(1), width = masks.size(2);
  torch::Tensor rows = masks.any(2);  // [N, H]: rows holding mask pixels
  torch::Tensor cols = masks.any(1);  // [N, W]
  auto onDevice = torch::TensorOptions().dtype(torch::kLong).device(logits.device());
  torch::Tensor rowIndex = torch::arange(height, onDevice).expand_as(rows);
  torch::Tensor colIndex = torch::arange(width, onDevice).expand_as(cols);
  torch::Tensor outside = torch::zeros({}, onDevice);
  torch::Tensor boxes = torch::stack({torch::where(cols, colIndex, width + outside).amin(1),
                                      torch::where(rows, rowIndex, height + outside).amin(1),
                                      torch::where(cols, colIndex, outside - 1).amax(1),
                                      torch::where(rows, rowIndex, outside - 1).amax(1)},
                                     1);
  torch::Tensor empty = ~rows.any(1, /*keepdim=*/true);
  scores.boxes = boxes.masked_fill(empty, 0).to(torch::kFloat);
  // NaN (an empty band) fails the comparison, as in the official filter.
  scores.passed =
      (iou.reshape({-1}) > filter.iouThreshold) & (scores.stability >= filter.stabilityThreshold);
  return scores;
}

std::vector<int64_t> BoxNms(const torch::Tensor& boxes, const torch::Tensor& scores,
                            const torch::Tensor& imageIndex, double threshold) {
  torch::Tensor b = boxes.to(torch::kFloat).contiguous();
  torch::Tensor s = scores.to(torch::kFloat).contiguous();
  torch::Tensor img = imageIndex.to(torch::kLong).contiguous();
  const int64_t count = b.size(0);
  auto box = b.accessor<float, 2>();
  auto score = s.accessor<float, 1>();
  auto image = img.accessor<int64_t, 1>();
  std::vector<int64_t> order(count);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t x, int64_t y) { return score[x] > score[y]; });
  auto area = [&](int64_t i) { return (box[i][2] - box[i][0]) * (box[i][3] - box[i][1]); };
  std::vector<int64_t> kept;
  for (int64_t i : order) {
    bool duplicate = false;
    for (int64_t k : kept) {
      if (image[k] != image[i]) continue;
      const float w = std::min(box[i][2], box[k][2]) - std::max(box[i][0], box[k][0]);
      const float h = std::min(box[i][3], box[k][3]) - std::max(box[i][1], box[k][1]);
      const float overlap = std::max(w, 0.0f) * std::max(h, 0.0f);
      // 0 / 0 (two empty boxes) is NaN: not above the threshold, as in torchvision.
      if (overlap / (area(i) + area(k) - overlap) > threshold) {
        duplicate = true;
        break;
      }
    }
    if (!duplicate) kept.push_back(i);
  }
  std::sort(kept.begin(), kept.end());
  return kept;
}

namespace {

double NumberField(const Napi::Object& object, const char* name, const std::string& what,
                   double least, double most) {
  Napi::Value value = object.Get(name);
  double number = value.IsNumber() ? value.As<Napi::Number>().DoubleValue() : least - 1;
  if (!value.IsNumber())
    ThrowTypeError(TypeCode::kArgument, what + "." + name + " must be a number");
  if (!(number >= least && number <= most))
    ThrowRangeError(RangeCode::kRange, what + "." + name + " must be a number in [" +
                                           c10::str(least) + ", " + c10::str(most) + "]");
  return number;
}

}  // namespace

AutoMaskFilter AutoMaskFilterFromJs(const Napi::Value& value, const std::string& what) {
  if (!value.IsObject() || value.IsArray())
    ThrowTypeError(TypeCode::kArgument, what + " must be an object");
  Napi::Object object = value.As<Napi::Object>();
  double perBatch = NumberField(object, "pointsPerBatch", what, 1, 1 << 20);
  if (perBatch != static_cast<double>(static_cast<int64_t>(perBatch)))
    ThrowRangeError(RangeCode::kRange, what + ".pointsPerBatch must be an integer");
  return {NumberField(object, "iouThreshold", what, 0, 1),
          NumberField(object, "stabilityThreshold", what, 0, 1),
          NumberField(object, "stabilityOffset", what, 0, 1e6),
          NumberField(object, "boxNmsThreshold", what, 0, 1), static_cast<int64_t>(perBatch)};
}

Napi::Value SelectAutoMasks(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  torch::Tensor logits = TensorFromJs(info[0], torch::kFloat, 3, "logits");
  torch::Tensor iou = TensorFromJs(info[1], torch::kFloat, 1, "iou");
  torch::Tensor imageIndex = TensorFromJs(info[2], torch::kLong, 1, "imageIndex");
  if (iou.size(0) != logits.size(0) || imageIndex.size(0) != logits.size(0))
    ThrowRangeError(RangeCode::kShape, "logits, iou and imageIndex must have one row per mask");
  AutoMaskFilter filter = AutoMaskFilterFromJs(info[3], "filter");
  MaskScores scores = ScoreMasks(logits, iou, filter);
  torch::Tensor passed = scores.passed.nonzero().reshape({-1});
  torch::Tensor kept = torch::zeros({logits.size(0)}, torch::kUInt8);
  for (int64_t k : BoxNms(scores.boxes.index_select(0, passed), iou.index_select(0, passed),
                          imageIndex.index_select(0, passed), filter.boxNmsThreshold))
    kept[passed[k].item<int64_t>()] = 1;
  Napi::Object result = Napi::Object::New(env);
  result.Set("stability", TensorToJs(env, scores.stability));
  result.Set("boxes", TensorToJs(env, scores.boxes));
  result.Set("kept", TensorToJs(env, kept));
  return result;
}

}  // namespace crackseg
