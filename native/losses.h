// The training losses, on probabilities (sigmoid of the logits) and 0/1 targets of shape
// [B, 1, H, W] in float32; each returns a differentiable scalar.
#pragma once

#include <torch/script.h>

namespace crackseg {

// 1 − (2|P∩G| + 1) / (|P| + |G| + 1) per image, averaged.
torch::Tensor DiceLoss(const torch::Tensor& probabilities, const torch::Tensor& target);

// Sigmoid focal loss (Lin et al.), averaged over pixels.
torch::Tensor FocalLoss(const torch::Tensor& logits, const torch::Tensor& probabilities,
                        const torch::Tensor& target, double alpha, double gamma);

// 1 − clDice (Shit et al. 2021) between soft skeletons and the masks they lie in.
torch::Tensor SoftClDiceLoss(const torch::Tensor& probabilities, const torch::Tensor& target);

}  // namespace crackseg
