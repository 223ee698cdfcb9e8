// Zhang–Suen thinning, pixel-for-pixel the same as `skimage.morphology.skeletonize` (2D, its
// default "zhang" method), which the Python seed project and the reference checks use.
//
// The parallel two-sub-iteration scheme of Zhang & Suen (CACM 27(3), 1984): in each sub-iteration
// every foreground pixel whose 8-neighbourhood is "removable" is found on the image as it stood,
// then all are removed at once; repeat until nothing changes. Which neighbourhoods are removable
// comes from scikit-image's lookup table (BSD-3-Clause), copied below. It departs from the paper's
// conditions in 25 of the 256 neighbourhoods — staircase corners (e.g. N and E set, NE clear) are
// removable, and two-pixel end configurations are removed in only one of the two sub-iterations,
// or never — so lines come out one pixel thin without the paper's staircases and short end spurs
// do not erode away. Matching it keeps skeleton-based metrics comparable with Python's.
#include "skeleton.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "errors.h"
#include "js_values.h"

namespace crackseg {
namespace {

// Indexed by the 8 neighbours packed as bits: NW=1, N=2, NE=4, E=8, SE=16, S=32, SW=64, W=128.
// 1: removable in the first sub-iteration, 2: in the second, 3: in both, 0: never.
constexpr std::array<uint8_t, 256> kRemovable = {
    0, 0, 0, 1, 0, 0, 1, 3, 0, 0, 3, 1, 1, 0, 1, 3, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 2, 0, 3, 0, 3, 3,
    0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 3, 0, 2, 2,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    2, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 3, 0, 2, 0,
    0, 0, 3, 1, 0, 0, 1, 3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
    3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    2, 3, 1, 3, 0, 0, 1, 3, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    2, 3, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 3, 3, 0, 1, 0, 0, 0, 0, 2, 2, 0, 0, 2, 0, 0, 0,
};

// Whether the 8 bytes at `bytes` are all 0 (one unaligned 64-bit load).
inline bool IsZero8(const uint8_t* bytes) {
  uint64_t word;
  std::memcpy(&word, bytes, sizeof word);
  return word == 0;
}

// The 8 neighbours of pixel `i` packed as kRemovable's index.
inline int Neighbourhood(const uint8_t* image, int64_t i, int64_t stride) {
  return image[i - stride - 1] | image[i - stride] << 1 | image[i - stride + 1] << 2 |
         image[i + 1] << 3 | image[i + stride + 1] << 4 | image[i + stride] << 5 |
         image[i + stride - 1] << 6 | image[i - 1] << 7;
}

// The two sub-iterations' work lists: indices of foreground pixels, each at most once per list,
// membership as one bit per list in a byte per pixel. Sized for every foreground pixel, so
// appending never reallocates.
class WorkLists {
 public:
  WorkLists(size_t pixels, size_t foreground) : member_(pixels, 0) {
    for (auto& list : lists_) list.reset(new uint32_t[foreground + 1]);
    taken_.reset(new uint32_t[foreground + 1]);
  }

  // Puts foreground pixel `i` on both lists (where it is not yet).
  void Add(uint32_t i) {
    const uint8_t bits = member_[i];
    if (bits == 3) return;
    member_[i] = 3;
    // Appended without branching: along ragged fronts which list lacks `i` is unpredictable.
    lists_[0][sizes_[0]] = i;
    sizes_[0] += ~bits & 1;
    lists_[1][sizes_[1]] = i;
    sizes_[1] += (~bits >> 1) & 1;
  }

  // Empties sub-iteration `pass`'s list (1 or 2); returns its items, valid until the next Take.
  std::pair<const uint32_t*, size_t> Take(int pass) {
    const size_t size = std::exchange(sizes_[pass - 1], 0);
    std::swap(taken_, lists_[pass - 1]);
    const uint8_t clear = static_cast<uint8_t>(~pass);
    for (size_t k = 0; k < size; ++k) member_[taken_[k]] &= clear;
    return {taken_.get(), size};
  }

 private:
  std::vector<uint8_t> member_;
  std::array<std::unique_ptr<uint32_t[]>, 2> lists_;
  std::array<size_t, 2> sizes_ = {0, 0};
  std::unique_ptr<uint32_t[]> taken_;
};

}  // namespace

Napi::Value ZhangSuenSkeleton(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  torch::Tensor mask = TensorViewOfJs(info[0], torch::kUInt8, 2, "mask");
  const int64_t height = mask.size(0);
  const int64_t width = mask.size(1);
  const uint8_t* source = mask.data_ptr<uint8_t>();
  // A one-pixel border of background spares every bounds check below.
  const int64_t stride = width + 2;
  if (stride * (height + 2) > std::numeric_limits<uint32_t>::max())
    ThrowRangeError(RangeCode::kShape, "zhangSuenSkeleton: a mask of " + std::to_string(width) +
                                           "x" + std::to_string(height) +
                                           " has more than 2^32 pixels");
  std::vector<uint8_t> image(static_cast<size_t>(stride * (height + 2)), 0);
  uint8_t* pixel = image.data();
  size_t foreground = 0;
  // Cracks leave most of a mask background: both scans skip it eight pixels at a time.
  for (int64_t y = 0; y < height; ++y) {
    const uint8_t* from = source + y * width;
    uint8_t* to = pixel + (y + 1) * stride + 1;
    for (int64_t x = 0; x < width; ++x) {
      if (x + 8 <= width && IsZero8(from + x)) {
        x += 7;
        continue;
      }
      to[x] = from[x] != 0;
      foreground += to[x];
    }
  }
  // Work lists hold the pixels whose neighbourhood changed since that sub-iteration last found them
  // not removable (removability depends only on the neighbourhood): a solid blob costs its area
  // once, not once per layer. Only a pixel with a background neighbour can be removable.
  const int64_t pixels = static_cast<int64_t>(image.size());
  WorkLists work(image.size(), foreground);
  for (int64_t i = 0; i < pixels; ++i) {
    if (i + 8 <= pixels && IsZero8(pixel + i)) {
      i += 7;
      continue;
    }
    if (pixel[i] && Neighbourhood(pixel, i, stride) != 255) work.Add(static_cast<uint32_t>(i));
  }
  const std::array<int64_t, 8> around = {-stride - 1, -stride,    -stride + 1, -1,
                                         1,           stride - 1, stride,      stride + 1};
  std::unique_ptr<uint32_t[]> removable(new uint32_t[foreground + 1]);
  bool removedInIteration = true;
  while (removedInIteration) {
    removedInIteration = false;
    for (int pass = 1; pass <= 2; ++pass) {
      // Decided on the image as it stood, then applied at once (the parallel scheme). A listed
      // pixel may have gone since it was listed; it is never removable then. Appended without
      // branching, as in WorkLists::Add.
      const auto [list, size] = work.Take(pass);
      size_t count = 0;
      for (size_t k = 0; k < size; ++k) {
        const uint32_t i = list[k];
        removable[count] = i;
        count += pixel[i] & (kRemovable[Neighbourhood(pixel, i, stride)] >> (pass - 1)) & 1;
      }
      if (count == 0) continue;
      removedInIteration = true;
      for (size_t k = 0; k < count; ++k) pixel[removable[k]] = 0;
      for (size_t k = 0; k < count; ++k)
        for (int64_t offset : around) {
          const int64_t neighbour = removable[k] + offset;
          if (pixel[neighbour]) work.Add(static_cast<uint32_t>(neighbour));
        }
    }
  }
  Napi::Uint8Array skeleton = Napi::Uint8Array::New(env, static_cast<size_t>(width * height));
  for (int64_t y = 0; y < height; ++y)
    std::copy_n(pixel + (y + 1) * stride + 1, width, skeleton.Data() + y * width);
  return skeleton;
}

}  // namespace crackseg
