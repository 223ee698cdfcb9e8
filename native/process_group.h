// DistributedGroup: this process's membership in a c10d process group (PyTorch's own distributed
// engine): a TCPStore at MASTER_ADDR:MASTER_PORT (served by rank 0), Gloo on the CPU, NCCL on CUDA
// where the libtorch has it. Two channels of the same ranks, each its own c10d group: `kControl`
// for what the JS side reduces (validation counts, stop flags), `kGradients` for the trainer's
// buckets, so collectives issued from different threads never interleave within one group. A
// join or collective that fails or outlives the timeout throws a NativeError coded
// ERR_CRACKSEG_DISTRIBUTED, naming the ranks on this machine whose process is gone; bad options
// are RangeErrors (ERR_CRACKSEG_RANGE). ProcessGroupWrap is its JS face (`joinProcessGroup`).
#pragma once

#include <napi.h>
#include <torch/torch.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "errors.h"

namespace c10d {
class Work;
}

namespace crackseg {

struct GroupOptions {
  int rank = 0;
  int worldSize = 1;
  std::string masterAddr;
  int masterPort = 0;
  std::string backend;            // "gloo" or "nccl"
  c10::Device device{c10::kCPU};  // where the control channel's tensors go (NCCL: this rank's GPU)
  std::chrono::milliseconds timeout{0};
};

enum class Channel { kControl = 0, kGradients = 1 };

class DistributedGroup {
 public:
  // Blocks until every rank joined (or the timeout passed).
  static std::shared_ptr<DistributedGroup> Join(const GroupOptions& options);
  ~DistributedGroup();

  int rank() const { return options_.rank; }
  int worldSize() const { return options_.worldSize; }
  const std::string& backend() const { return options_.backend; }
  const c10::Device& device() const { return options_.device; }

  // Starts summing `tensors` in place across ranks; Wait() for it. Every rank must start the
  // same collectives on a channel in the same order.
  c10::intrusive_ptr<c10d::Work> StartAllreduce(std::vector<torch::Tensor>& tensors,
                                                Channel channel);
  // Waits for a started collective; `what` names it in the error.
  void Wait(const c10::intrusive_ptr<c10d::Work>& work, const std::string& what);
  void Barrier();
  // Every rank's `tensor` (the same shape on every rank), by rank, on the control channel.
  std::vector<torch::Tensor> Allgather(const torch::Tensor& tensor);

 private:
  struct Impl;
  explicit DistributedGroup(GroupOptions options);
  // Why a collective may have failed: the ranks of this machine whose process is gone.
  std::string PeerReport() const;
  // The error for collective `what`, from the exception in flight.
  NativeError Failure(const std::string& what) const;

  GroupOptions options_;
  std::unique_ptr<Impl> impl_;
};

class ProcessGroupWrap : public Napi::ObjectWrap<ProcessGroupWrap> {
 public:
  // Adds `joinProcessGroup(options)` to `exports`.
  static void Init(Napi::Env env, Napi::Object exports);
  explicit ProcessGroupWrap(const Napi::CallbackInfo& info);
  // The group of a JS ProcessGroup (throws a TypeError naming `what` otherwise).
  static std::shared_ptr<DistributedGroup> FromValue(const Napi::Value& value, const char* what);

 private:
  // The group; a closed one throws ERR_CRACKSEG_DISPOSED (call under Guarded).
  std::shared_ptr<DistributedGroup> Group() const;
  Napi::Value Rank(const Napi::CallbackInfo& info);
  Napi::Value WorldSize(const Napi::CallbackInfo& info);
  Napi::Value Backend(const Napi::CallbackInfo& info);
  Napi::Value AllreduceSum(const Napi::CallbackInfo& info);
  Napi::Value AllgatherBytes(const Napi::CallbackInfo& info);
  Napi::Value Barrier(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  std::shared_ptr<DistributedGroup> group_;
};

}  // namespace crackseg
