#include "losses.h"

#include <vector>

namespace crackseg {
namespace {

// Soft-skeleton iterations of the clDice loss: enough to thin cracks up to ~10 px wide.
constexpr int kSoftSkeletonIterations = 5;

// Soft morphology of the clDice paper: erosion as the minimum of a vertical and a horizontal
// 3-pixel min-pool, dilation as a 3×3 max-pool.
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

}  // namespace

torch::Tensor DiceLoss(const torch::Tensor& probabilities, const torch::Tensor& target) {
  std::vector<int64_t> dims{1, 2, 3};
  torch::Tensor intersection = (probabilities * target).sum(dims);
  torch::Tensor total = probabilities.sum(dims) + target.sum(dims);
  return (1 - (2 * intersection + 1) / (total + 1)).mean();
}

torch::Tensor FocalLoss(const torch::Tensor& logits, const torch::Tensor& probabilities,
                        const torch::Tensor& target, double alpha, double gamma) {
  torch::Tensor ce =
      at::binary_cross_entropy_with_logits(logits, target, {}, {}, at::Reduction::None);
  torch::Tensor pt = probabilities * target + (1 - probabilities) * (1 - target);
  torch::Tensor weight = alpha * target + (1 - alpha) * (1 - target);
  return (weight * ce * (1 - pt).pow(gamma)).mean();
}

torch::Tensor SoftClDiceLoss(const torch::Tensor& probabilities, const torch::Tensor& target) {
  torch::Tensor predictedSkeleton = SoftSkeleton(probabilities);
  torch::Tensor targetSkeleton = SoftSkeleton(target);
  torch::Tensor precision =
      ((predictedSkeleton * target).sum() + 1) / (predictedSkeleton.sum() + 1);
  torch::Tensor sensitivity =
      ((targetSkeleton * probabilities).sum() + 1) / (targetSkeleton.sum() + 1);
  return 1 - 2 * precision * sensitivity / (precision + sensitivity);
}

}  // namespace crackseg
