// GradientSync: averages the trained parameters' gradients across the ranks of a process group,
// as c10d's Reducer does for DistributedDataParallel. The gradients are packed, in reverse
// parameter order (about the order backward produces them), into fp32 buckets (the first 1 MiB,
// the others up to `bucketBytes`); a post-hook on each parameter's gradient accumulator copies its
// gradient into its bucket, and the bucket whose last gradient arrived starts its allreduce on the
// group's gradient channel while backward goes on. Buckets start in index order on every rank, so
// the ranks' collectives match. Only an armed backward (the last micro-batch of an optimizer step)
// is reduced: the micro-batches before accumulate locally, as DDP's no_sync().
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "process_group.h"

namespace crackseg {

class GradientSync {
 public:
  // `parameters`: the module's trained parameters (hooked); `masters`: their fp32 masters, which
  // receive the average (the very same tensors when the module computes in fp32). Call after the
  // module's last cast: a cast gives the parameters new gradient accumulators.
  GradientSync(std::shared_ptr<DistributedGroup> group, std::vector<torch::Tensor> parameters,
               std::vector<torch::Tensor> masters, int64_t bucketBytes);
  ~GradientSync();
  GradientSync(const GradientSync&) = delete;
  GradientSync& operator=(const GradientSync&) = delete;

  // The next backward's gradients are reduced.
  void Arm();
  // After an armed backward: starts the buckets still waiting (parameters that got no gradient
  // in this micro-batch), waits for every bucket and leaves in each master's gradient the mean
  // over ranks of its gradient summed over the micro-batches (undefined where no rank has one);
  // the module's own bf16 gradients are released. Throws when a collective fails.
  void Finish();
  // Forgets an armed backward that failed.
  void Disarm();

  int worldSize() const;

  struct Buckets;  // shared with the accumulators' hooks

 private:
  std::shared_ptr<Buckets> buckets_;
  // Each hooked gradient accumulator and its hook's key, to remove the hooks.
  std::vector<std::pair<std::shared_ptr<torch::autograd::Node>, uintptr_t>> hooks_;
};

}  // namespace crackseg
