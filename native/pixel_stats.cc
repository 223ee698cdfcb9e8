#include "pixel_stats.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "errors.h"
#include "js_values.h"
#include "tensor_store.h"

namespace crackseg {
namespace {

// The ascending thresholds of a Float64Array argument.
std::vector<double> Thresholds(const Napi::Value& value) {
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
    ThrowTypeError(TypeCode::kArgument, "thresholds must be a Float64Array");
  Napi::Float64Array array = value.As<Napi::Float64Array>();
  std::vector<double> thresholds(array.Data(), array.Data() + array.ElementLength());
  if (thresholds.empty()) ThrowRangeError(RangeCode::kShape, "thresholds must not be empty");
  for (size_t k = 1; k < thresholds.size(); ++k)
    if (!(thresholds[k] > thresholds[k - 1]))
      ThrowRangeError(RangeCode::kRange, "thresholds must be strictly ascending");
  return thresholds;
}

Napi::Float64Array ToJs(Napi::Env env, const std::vector<int64_t>& counts) {
  Napi::Float64Array array = Napi::Float64Array::New(env, counts.size());
  for (size_t i = 0; i < counts.size(); ++i) array[i] = static_cast<double>(counts[i]);
  return array;
}

}  // namespace

Napi::Value ThresholdHistograms(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  torch::Tensor probabilities = HeldOrViewOfJs(info[0], torch::kFloat, 2, "probabilities");
  torch::Tensor groundTruth = TensorViewOfJs(info[1], torch::kUInt8, 2, "groundTruth");
  if (probabilities.sizes() != groundTruth.sizes())
    ThrowRangeError(RangeCode::kShape, "probabilities " + c10::str(probabilities.sizes()) +
                                           " and groundTruth " + c10::str(groundTruth.sizes()) +
                                           " differ in size");
  std::vector<double> t = Thresholds(info[2]);
  const int64_t levels = static_cast<int64_t>(t.size());
  // A first guess from the mean spacing, then exact by comparing with the thresholds themselves.
  const double perStep = levels > 1 ? static_cast<double>(levels - 1) / (t.back() - t.front()) : 1;
  std::vector<int64_t> all(levels + 1, 0), crack(levels + 1, 0);
  const float* p = probabilities.data_ptr<float>();
  const uint8_t* g = groundTruth.data_ptr<uint8_t>();
  const int64_t count = probabilities.numel();
  for (int64_t i = 0; i < count; ++i) {
    const double value = p[i];
    int64_t reached = 0;
    if (value >= t[0]) {
      const double guess = (value - t[0]) * perStep + 1;
      reached = guess >= static_cast<double>(levels) ? levels : static_cast<int64_t>(guess);
      if (reached < 1) reached = 1;
      while (reached < levels && value >= t[reached]) ++reached;
      while (reached > 1 && !(value >= t[reached - 1])) --reached;
    }
    ++all[reached];
    crack[reached] += g[i] != 0;  // no branch: ground truth and predictions interleave
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("all", ToJs(env, all));
  result.Set("crack", ToJs(env, crack));
  return result;
}

Napi::Value SkeletonMatches(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  torch::Tensor skeleton = TensorViewOfJs(info[0], torch::kUInt8, 2, "skeleton");
  torch::Tensor other = TensorViewOfJs(info[1], torch::kUInt8, 2, "other");
  torch::Tensor mask = TensorViewOfJs(info[2], torch::kUInt8, 2, "mask");
  if (other.sizes() != skeleton.sizes() || mask.sizes() != skeleton.sizes())
    ThrowRangeError(RangeCode::kShape, "skeleton, other and mask must have one size");
  if (!info[3].IsTypedArray() ||
      info[3].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array ||
      info[3].As<Napi::Int32Array>().ElementLength() % 2 != 0)
    ThrowTypeError(TypeCode::kArgument, "offsets must be an Int32Array of (dx, dy) pairs");
  Napi::Int32Array offsetArray = info[3].As<Napi::Int32Array>();
  const std::vector<int32_t> offsets(offsetArray.Data(),
                                     offsetArray.Data() + offsetArray.ElementLength());
  const int64_t height = skeleton.size(0);
  const int64_t width = skeleton.size(1);
  const uint8_t* s = skeleton.data_ptr<uint8_t>();
  const uint8_t* o = other.data_ptr<uint8_t>();
  const uint8_t* m = mask.data_ptr<uint8_t>();
  int64_t pixels = 0, matched = 0, inMask = 0;
  const int64_t count = height * width;
  for (int64_t i = 0; i < count; ++i) {
    // Skeletons are sparse: background is crossed eight pixels at a time.
    if (i + 8 <= count) {
      uint64_t word;
      std::memcpy(&word, s + i, sizeof word);
      if (word == 0) {
        i += 7;
        continue;
      }
    }
    if (s[i] == 0) continue;
    ++pixels;
    inMask += m[i] != 0;
    const int64_t y = i / width;
    const int64_t x = i - y * width;
    // Nearest offsets first: a match usually ends the search at once.
    for (size_t k = 0; k < offsets.size(); k += 2) {
      const int64_t nx = x + offsets[k];
      const int64_t ny = y + offsets[k + 1];
      if (nx >= 0 && nx < width && ny >= 0 && ny < height && o[ny * width + nx] != 0) {
        ++matched;
        break;
      }
    }
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("pixels", static_cast<double>(pixels));
  result.Set("matched", static_cast<double>(matched));
  result.Set("inMask", static_cast<double>(inMask));
  return result;
}

Napi::Value QuantizeProbabilities(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  torch::Tensor probabilities = HeldOrViewOfJs(info[0], torch::kFloat, 2, "probabilities");
  if (!info[1].IsNumber()) ThrowTypeError(TypeCode::kArgument, "bits must be 8 or 16");
  const double bits = info[1].As<Napi::Number>().DoubleValue();
  if (bits != 8 && bits != 16) ThrowRangeError(RangeCode::kRange, "bits must be 8 or 16");
  const double scale = bits == 16 ? 65535 : 255;
  const float* p = probabilities.data_ptr<float>();
  const size_t count = static_cast<size_t>(probabilities.numel());
  auto quantize = [&](auto* out) {
    for (size_t i = 0; i < count; ++i) {
      const double value = p[i];
      // NaN fails both comparisons and becomes 0.
      const double clamped = value >= 1 ? 1 : value > 0 ? value : 0;
      out[i] = static_cast<std::remove_pointer_t<decltype(out)>>(clamped * scale + 0.5);
    }
  };
  if (bits == 16) {
    Napi::Uint16Array out = Napi::Uint16Array::New(env, count);
    quantize(out.Data());
    return out;
  }
  Napi::Uint8Array out = Napi::Uint8Array::New(env, count);
  quantize(out.Data());
  return out;
}

}  // namespace crackseg
