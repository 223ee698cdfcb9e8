#include "gradient_sync.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <algorithm>
#include <mutex>
#include <torch/csrc/distributed/c10d/Work.hpp>

namespace crackseg {

namespace {
// c10d's DDP defaults: a small first bucket so communication starts early in backward.
constexpr int64_t kFirstBucketBytes = 1 << 20;
}  // namespace

struct GradientSync::Buckets {
  std::shared_ptr<DistributedGroup> group;
  std::vector<torch::Tensor> parameters, masters;
  bool separateMasters = false;
  std::vector<torch::Tensor> buckets;  // fp32, flat
  std::vector<torch::Tensor> slots;    // per parameter: its view into its bucket
  std::vector<size_t> bucketOf;        // per parameter
  std::vector<size_t> bucketSize;      // parameters per bucket
  std::mutex mutex;                    // hooks may run on the autograd engine's device thread
  bool armed = false;
  std::vector<bool> ready;         // per parameter, in the armed backward
  std::vector<float> hasGradient;  // per parameter, in the armed backward
  std::vector<size_t> waiting;     // per bucket: parameters not ready yet
  size_t nextBucket = 0;           // the next bucket to start
  std::vector<c10::intrusive_ptr<c10d::Work>> started;

  // Copies parameter i's gradient (plus, with separate masters, what earlier micro-batches
  // accumulated in its master) into its slot, then starts every bucket now complete, in order.
  void MarkReady(size_t i) {
    if (!armed || ready[i]) return;
    torch::NoGradGuard noGrad;
    torch::Tensor own = parameters[i].grad();
    torch::Tensor earlier = separateMasters ? masters[i].grad() : torch::Tensor();
    if (own.defined())
      slots[i].copy_(own);
    else
      slots[i].zero_();
    if (earlier.defined()) slots[i].add_(earlier);
    hasGradient[i] = own.defined() || earlier.defined() ? 1.0f : 0.0f;
    ready[i] = true;
    waiting[bucketOf[i]] -= 1;
    while (nextBucket < buckets.size() && waiting[nextBucket] == 0) {
      std::vector<torch::Tensor> tensors{buckets[nextBucket++]};
      started.push_back(group->StartAllreduce(tensors, Channel::kGradients));
    }
  }
};

namespace {

// Runs after the accumulator has added the backward's gradient to the parameter's .grad.
class ReadyHook : public torch::autograd::FunctionPostHook {
 public:
  ReadyHook(std::weak_ptr<GradientSync::Buckets> buckets, size_t index)
      : buckets_(std::move(buckets)), index_(index) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list&) override {
    if (auto buckets = buckets_.lock()) {
      std::lock_guard<std::mutex> lock(buckets->mutex);
      buckets->MarkReady(index_);
    }
    return outputs;
  }

 private:
  std::weak_ptr<GradientSync::Buckets> buckets_;
  size_t index_;
};

}  // namespace

GradientSync::GradientSync(std::shared_ptr<DistributedGroup> group,
                           std::vector<torch::Tensor> parameters,
                           std::vector<torch::Tensor> masters, int64_t bucketBytes)
    : buckets_(std::make_shared<Buckets>()) {
  Buckets& b = *buckets_;
  b.group = std::move(group);
  b.parameters = std::move(parameters);
  b.masters = std::move(masters);
  size_t count = b.parameters.size();
  b.separateMasters = count > 0 && !b.parameters[0].is_same(b.masters[0]);
  b.slots.resize(count);
  b.bucketOf.resize(count);
  // Reverse order: the last parameters' gradients come first in backward.
  std::vector<std::vector<size_t>> members;
  int64_t bytes = 0;
  for (size_t k = 0; k < count; ++k) {
    size_t i = count - 1 - k;
    int64_t cap = members.size() <= 1 ? kFirstBucketBytes : bucketBytes;
    if (members.empty() || (bytes > 0 && bytes + b.masters[i].numel() * 4 > cap)) {
      members.emplace_back();
      bytes = 0;
    }
    members.back().push_back(i);
    bytes += b.masters[i].numel() * 4;
  }
  for (size_t bucket = 0; bucket < members.size(); ++bucket) {
    int64_t numel = 0;
    for (size_t i : members[bucket]) numel += b.masters[i].numel();
    torch::Tensor flat = torch::zeros({numel}, b.masters[0].options().dtype(torch::kFloat));
    int64_t offset = 0;
    for (size_t i : members[bucket]) {
      b.slots[i] = flat.narrow(0, offset, b.masters[i].numel()).view(b.masters[i].sizes());
      b.bucketOf[i] = bucket;
      offset += b.masters[i].numel();
    }
    b.buckets.push_back(flat);
    b.bucketSize.push_back(members[bucket].size());
  }
  for (size_t i = 0; i < count; ++i) {
    auto accumulator = torch::autograd::impl::grad_accumulator(b.parameters[i]);
    uintptr_t key = accumulator->add_post_hook(std::make_unique<ReadyHook>(buckets_, i));
    hooks_.emplace_back(std::move(accumulator), key);
  }
}

GradientSync::~GradientSync() {
  for (auto& [accumulator, key] : hooks_) accumulator->del_post_hook(key);
}

int GradientSync::worldSize() const { return buckets_->group->worldSize(); }

void GradientSync::Arm() {
  Buckets& b = *buckets_;
  std::lock_guard<std::mutex> lock(b.mutex);
  b.armed = true;
  b.ready.assign(b.parameters.size(), false);
  b.hasGradient.assign(b.parameters.size(), 0.0f);
  b.waiting = b.bucketSize;
  b.nextBucket = 0;
  b.started.clear();
}

void GradientSync::Disarm() {
  Buckets& b = *buckets_;
  std::lock_guard<std::mutex> lock(b.mutex);
  b.armed = false;
  b.started.clear();
}

void GradientSync::Finish() {
  Buckets& b = *buckets_;
  std::vector<c10::intrusive_ptr<c10d::Work>> started;
  torch::Tensor flags;
  {
    std::lock_guard<std::mutex> lock(b.mutex);
    for (size_t i = 0; i < b.parameters.size(); ++i) b.MarkReady(i);
    b.armed = false;
    // Which parameters have a gradient on some rank: the last collective of the step.
    flags = torch::tensor(b.hasGradient, torch::kFloat).to(b.buckets[0].device());
    std::vector<torch::Tensor> tensors{flags};
    b.started.push_back(b.group->StartAllreduce(tensors, Channel::kGradients));
    started.swap(b.started);
  }
  for (const auto& work : started) b.group->Wait(work, "gradient allreduce");
  torch::NoGradGuard noGrad;
  torch::Tensor anyRankTensor = flags.cpu();
  auto anyRank = anyRankTensor.accessor<float, 1>();
  double ranks = static_cast<double>(b.group->worldSize());
  for (auto& bucket : b.buckets) bucket.div_(ranks);
  for (size_t i = 0; i < b.parameters.size(); ++i) {
    if (b.separateMasters) b.parameters[i].mutable_grad() = torch::Tensor();
    torch::Tensor& grad = b.masters[i].mutable_grad();
    if (anyRank[static_cast<int64_t>(i)] == 0)
      grad = torch::Tensor();
    else if (grad.defined())
      grad.copy_(b.slots[i]);
    else
      grad = b.slots[i].clone();
  }
}

}  // namespace crackseg
