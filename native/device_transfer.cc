#include "device_transfer.h"

#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/cuda.h>

#include <chrono>
#include <functional>
#include <regex>
#include <thread>

#include "errors.h"

namespace crackseg {
namespace {

// `value` with `convert` applied to every tensor, through tuples and lists: the one walk of
// ToDevice and ToHost.
c10::IValue MapTensors(const c10::IValue& value,
                       const std::function<torch::Tensor(const torch::Tensor&)>& convert) {
  if (value.isTensor()) return convert(value.toTensor());
  if (value.isTuple()) {
    std::vector<c10::IValue> items;
    for (const auto& item : value.toTupleRef().elements())
      items.push_back(MapTensors(item, convert));
    return c10::ivalue::Tuple::create(std::move(items));
  }
  if (value.isList()) {
    c10::impl::GenericList in = value.toList();
    c10::impl::GenericList out(in.elementType());
    // By value: a list's iterator yields proxies (a reference to one: GCC 14 warns it may dangle).
    for (c10::IValue item : in) out.push_back(MapTensors(item, convert));
    return out;
  }
  return value;
}

}  // namespace

torch::Tensor Upload(const torch::Tensor& host, const c10::Device& device) {
  if (!device.is_cuda() || !host.device().is_cpu()) return host.to(device);
  // A copy from pageable memory makes libtorch wait for the stream; one from pinned memory does
  // not (the pinned block is held until the copy has run).
  return host.pin_memory().to(device, /*non_blocking=*/true);
}

HostCopy::HostCopy(const torch::Tensor& tensor) {
  if (!tensor.defined() || tensor.device().is_cpu()) {
    host_ = tensor.defined() ? tensor.detach().contiguous() : tensor;
    return;
  }
  host_ = torch::empty(
      tensor.sizes(),
      torch::TensorOptions().dtype(tensor.scalar_type()).device(torch::kCPU).pinned_memory(true));
  host_.copy_(tensor.detach(), /*non_blocking=*/true);
  c10::Device device = tensor.device();
  done_ = std::make_unique<c10::Event>(device.type());
  done_->record(c10::impl::getDeviceGuardImpl(device.type())->getStream(device));
}

torch::Tensor HostCopy::Wait() {
  // Polled (torch 1.13's c10::Event cannot be waited on); 50 µs is nothing next to device work.
  if (done_)
    while (!done_->query()) std::this_thread::sleep_for(std::chrono::microseconds(50));
  done_.reset();
  return host_;
}

std::vector<torch::Tensor> Download(const std::vector<torch::Tensor>& tensors) {
  std::vector<HostCopy> copies;
  copies.reserve(tensors.size());
  for (const torch::Tensor& tensor : tensors) copies.emplace_back(tensor);
  std::vector<torch::Tensor> host;
  for (HostCopy& copy : copies) host.push_back(copy.Wait());
  return host;
}

c10::IValue ToDevice(const c10::IValue& value, const c10::Device& device) {
  return MapTensors(value, [&](const torch::Tensor& tensor) { return Upload(tensor, device); });
}

c10::IValue ToHost(const c10::IValue& value) {
  return MapTensors(value, [](const torch::Tensor& tensor) {
    return tensor.detach().to(torch::kCPU).contiguous();
  });
}

c10::Device ParseDevice(const std::string& name) {
  static const std::regex pattern("^(cpu|cuda)(:([0-9]{1,4}))?$");
  std::smatch match;
  if (!std::regex_match(name, match, pattern) || (match[1] == "cpu" && match[2].matched))
    ThrowRangeError(RangeCode::kRange,
                    "device must be 'cpu', 'cuda' or 'cuda:N', got '" + name + "'");
  if (match[1] == "cpu") return c10::Device(c10::kCPU);
  if (!torch::cuda::is_available())
    ThrowError(ErrorCode::kDevice,
               "device '" + name + "' asked for, but CUDA is not available (libtorch " +
                   CRACKSEG_TORCH_FLAVOUR + " build, " +
                   std::to_string(torch::cuda::device_count()) + " CUDA devices)");
  int64_t index = match[3].matched ? std::stoll(match[3].str()) : 0;
  if (index >= static_cast<int64_t>(torch::cuda::device_count()))
    ThrowError(ErrorCode::kDevice, "device '" + name + "' does not exist: " +
                                       std::to_string(torch::cuda::device_count()) +
                                       " CUDA devices");
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
}

}  // namespace crackseg
