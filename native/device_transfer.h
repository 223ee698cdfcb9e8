// Tensors between the host and a device: uploads that do not wait, downloads that wait once, and
// the device names JS may give.
#pragma once

#include <c10/core/Event.h>
#include <torch/script.h>

#include <memory>
#include <string>
#include <vector>

namespace crackseg {

// `host` on `device` without waiting for it: on CUDA through pinned memory, copied non-blocking.
torch::Tensor Upload(const torch::Tensor& host, const c10::Device& device);

// A device → host copy in flight (into pinned memory, non-blocking); a host tensor is just kept.
class HostCopy {
 public:
  explicit HostCopy(const torch::Tensor& tensor);
  // The detached, contiguous host tensor, once the copy is done. Waits for the copy alone (an
  // event after it), not for work queued on the device later.
  torch::Tensor Wait();

 private:
  torch::Tensor host_;
  std::unique_ptr<c10::Event> done_;  // recorded after the copy; none for a host tensor
};

// Host copies of `tensors` (undefined stays undefined): all started, then waited for.
std::vector<torch::Tensor> Download(const std::vector<torch::Tensor>& tensors);

// `value` with every tensor uploaded to `device` (through tuples, lists and optionals).
c10::IValue ToDevice(const c10::IValue& value, const c10::Device& device);

// `value` with every tensor detached, contiguous and on the CPU: ready for the JS thread.
c10::IValue ToHost(const c10::IValue& value);

// Parses "cpu", "cuda" or "cuda:N" (a RangeError otherwise) and checks that this libtorch has
// that device (ERR_CRACKSEG_DEVICE otherwise).
c10::Device ParseDevice(const std::string& name);

}  // namespace crackseg
