#include "process_group.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <utility>

// Gloo needs its headers (Debian: libgloo-dev); NCCL is in CUDA builds of libtorch that have it.
#if __has_include(<gloo/algorithm.h>)
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#define CRACKSEG_WITH_GLOO 1
#endif
#if defined(CRACKSEG_WITH_CUDA) && __has_include(<nccl.h>) && \
    __has_include(<torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>)
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#define CRACKSEG_WITH_NCCL 1
#endif

#include "addon_data.h"
#include "async_job.h"
#include "device_transfer.h"
#include "errors.h"

namespace crackseg {

namespace {

// One c10d backend behind the two calls this file needs (their base class differs between
// torch 1.x, ProcessGroup, and 2.x, Backend; the calls do not).
struct Collectives {
  virtual ~Collectives() = default;
  virtual c10::intrusive_ptr<c10d::Work> Allreduce(std::vector<torch::Tensor>& tensors) = 0;
  virtual c10::intrusive_ptr<c10d::Work> Allgather(std::vector<std::vector<torch::Tensor>>& outputs,
                                                   std::vector<torch::Tensor>& inputs) = 0;
  virtual c10::intrusive_ptr<c10d::Work> Barrier() = 0;
};

template <typename Backend>
struct BackendCollectives : Collectives {
  explicit BackendCollectives(c10::intrusive_ptr<Backend> backend) : backend(std::move(backend)) {}
  c10::intrusive_ptr<c10d::Work> Allreduce(std::vector<torch::Tensor>& tensors) override {
    return backend->allreduce(tensors, c10d::AllreduceOptions());
  }
  c10::intrusive_ptr<c10d::Work> Allgather(std::vector<std::vector<torch::Tensor>>& outputs,
                                           std::vector<torch::Tensor>& inputs) override {
    return backend->allgather(outputs, inputs, c10d::AllgatherOptions());
  }
  c10::intrusive_ptr<c10d::Work> Barrier() override {
    return backend->barrier(c10d::BarrierOptions());
  }
  c10::intrusive_ptr<Backend> backend;
};

#ifdef CRACKSEG_WITH_GLOO
bool IsLoopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

// As torch.distributed: the interface GLOO_SOCKET_IFNAME names, else the hostname's address. A job
// whose rank 0 is on this machine's loopback (every rank on one machine) binds the loopback
// itself: the hostname need not resolve (a container or chroot often has no entry for it), and
// libtorch's fallback to the loopback would warn on stderr.
std::shared_ptr<::gloo::transport::Device> GlooDevice(const std::string& masterAddr) {
  const char* interface = std::getenv("GLOO_SOCKET_IFNAME");
  if (interface && *interface) return c10d::ProcessGroupGloo::createDeviceForInterface(interface);
  if (IsLoopback(masterAddr)) return c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1");
  return c10d::ProcessGroupGloo::createDefaultDevice();
}
#endif

std::unique_ptr<Collectives> MakeCollectives(const c10::intrusive_ptr<c10d::Store>& store,
                                             const GroupOptions& o) {
  if (o.backend == "gloo") {
#ifdef CRACKSEG_WITH_GLOO
    auto options = c10d::ProcessGroupGloo::Options::create(o.timeout);
    options->devices.push_back(GlooDevice(o.masterAddr));
    return std::make_unique<BackendCollectives<c10d::ProcessGroupGloo>>(
        c10::make_intrusive<c10d::ProcessGroupGloo>(store, o.rank, o.worldSize, options));
#else
    ThrowError(ErrorCode::kDistributed,
               "this build of crackseg has no Gloo (install libgloo-dev, rebuild)");
#endif
  }
  if (o.backend == "nccl") {
#ifdef CRACKSEG_WITH_NCCL
    auto options = c10d::ProcessGroupNCCL::Options::create();
    options->timeout = o.timeout;
    return std::make_unique<BackendCollectives<c10d::ProcessGroupNCCL>>(
        c10::make_intrusive<c10d::ProcessGroupNCCL>(store, o.rank, o.worldSize, options));
#else
    ThrowError(ErrorCode::kDistributed,
               "this build of crackseg has no NCCL (a CUDA libtorch with NCCL)");
#endif
  }
  ThrowRangeError(RangeCode::kRange,
                  "process group backend must be 'gloo' or 'nccl', got '" + o.backend + "'");
}

std::string HostName() {
  char name[256] = {0};
  gethostname(name, sizeof(name) - 1);
  return name;
}

// Whether process `pid` of this machine has exited (gone, or a zombie not yet reaped).
bool ProcessGone(int pid) {
  if (kill(pid, 0) != 0) return errno == ESRCH;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  size_t close = line.rfind(')');  // the state follows the command name in parentheses
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'Z';
}

}  // namespace

struct DistributedGroup::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  std::unique_ptr<Collectives> channels[2];
  // Each rank's host and process id, as it announced them on joining.
  std::vector<std::pair<std::string, int>> peers;
};

DistributedGroup::DistributedGroup(GroupOptions options)
    : options_(std::move(options)), impl_(std::make_unique<Impl>()) {}

DistributedGroup::~DistributedGroup() = default;

std::shared_ptr<DistributedGroup> DistributedGroup::Join(const GroupOptions& options) {
  if (options.worldSize < 1 || options.rank < 0 || options.rank >= options.worldSize)
    ThrowRangeError(RangeCode::kRange, "rank " + std::to_string(options.rank) +
                                           " is not in a world of size " +
                                           std::to_string(options.worldSize));
  if (options.masterPort < 1 || options.masterPort > 65535)
    ThrowRangeError(RangeCode::kRange,
                    "MASTER_PORT must be a port number, got " + std::to_string(options.masterPort));
  if (options.backend != "gloo" && options.backend != "nccl")
    ThrowRangeError(RangeCode::kRange, "process group backend must be 'gloo' or 'nccl', got '" +
                                           options.backend + "'");
  std::shared_ptr<DistributedGroup> group(new DistributedGroup(options));
  Impl& impl = *group->impl_;
  std::string where = options.masterAddr + ":" + std::to_string(options.masterPort);
  try {
    c10d::TCPStoreOptions storeOptions;
    storeOptions.port = static_cast<uint16_t>(options.masterPort);
    storeOptions.isServer = options.rank == 0;
    storeOptions.numWorkers = options.worldSize;
    storeOptions.timeout = options.timeout;
    impl.store = c10::make_intrusive<c10d::TCPStore>(options.masterAddr, storeOptions);
    std::string me = c10::str(HostName(), " ", getpid());
    impl.store->set("crackseg/peer/" + std::to_string(options.rank),
                    std::vector<uint8_t>(me.begin(), me.end()));
    for (int r = 0; r < options.worldSize; ++r) {
      std::vector<uint8_t> value = impl.store->get("crackseg/peer/" + std::to_string(r));
      std::istringstream in(std::string(value.begin(), value.end()));
      std::pair<std::string, int> peer;
      in >> peer.first >> peer.second;
      impl.peers.push_back(peer);
    }
    for (int c = 0; c < 2; ++c)
      impl.channels[c] = MakeCollectives(c10::make_intrusive<c10d::PrefixStore>(
                                             "crackseg/channel" + std::to_string(c), impl.store),
                                         options);
  } catch (...) {
    ThrowError(ErrorCode::kDistributed,
               "rank " + std::to_string(options.rank) + " of " + std::to_string(options.worldSize) +
                   " could not join the " + options.backend + " process group at " + where + ": " +
                   std::string(CurrentNativeError().what()));
  }
  return group;
}

c10::intrusive_ptr<c10d::Work> DistributedGroup::StartAllreduce(std::vector<torch::Tensor>& tensors,
                                                                Channel channel) {
  try {
    return impl_->channels[static_cast<int>(channel)]->Allreduce(tensors);
  } catch (...) {
    throw Failure("allreduce");
  }
}

void DistributedGroup::Wait(const c10::intrusive_ptr<c10d::Work>& work, const std::string& what) {
  try {
    if (!work->wait(options_.timeout))
      ThrowError(ErrorCode::kDistributed,
                 "timed out after " + std::to_string(options_.timeout.count()) + " ms");
  } catch (...) {
    throw Failure(what);
  }
}

NativeError DistributedGroup::Failure(const std::string& what) const {
  std::string cause = std::string(CurrentNativeError().what());
  return NativeError(ErrorKind::kError, CodeName(ErrorCode::kDistributed),
                     what + " failed on rank " + std::to_string(rank()) + " of " +
                         std::to_string(worldSize()) + ": " + PeerReport() + " (" +
                         cause.substr(0, cause.find('\n')) + ")");
}

void DistributedGroup::Barrier() {
  Wait(impl_->channels[static_cast<int>(Channel::kControl)]->Barrier(), "barrier");
}

std::vector<torch::Tensor> DistributedGroup::Allgather(const torch::Tensor& tensor) {
  std::vector<torch::Tensor> inputs{tensor.to(options_.device)};
  std::vector<std::vector<torch::Tensor>> outputs(1);
  for (int r = 0; r < worldSize(); ++r) outputs[0].push_back(torch::empty_like(inputs[0]));
  c10::intrusive_ptr<c10d::Work> work;
  try {
    work = impl_->channels[static_cast<int>(Channel::kControl)]->Allgather(outputs, inputs);
  } catch (...) {
    throw Failure("allgather");
  }
  Wait(work, "allgather");
  return outputs[0];
}

std::string DistributedGroup::PeerReport() const {
  std::string host = HostName();
  // A killed peer's sockets close before its process has quite exited: look again briefly.
  for (int attempt = 0; attempt < 10; ++attempt) {
    std::string gone;
    for (size_t r = 0; r < impl_->peers.size(); ++r) {
      const auto& [peerHost, pid] = impl_->peers[r];
      if (static_cast<int>(r) == rank() || peerHost != host || !ProcessGone(pid)) continue;
      gone += (gone.empty() ? "" : ", ") + c10::str("rank ", r, " (pid ", pid, ")");
    }
    if (!gone.empty()) return gone + " exited";
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return "a peer stopped (no rank on this machine exited: one on another machine, or stalled)";
}

// ---- JS ----

void ProcessGroupWrap::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function constructor =
      DefineClass(env, "ProcessGroup",
                  {
                      InstanceAccessor<&ProcessGroupWrap::Rank>("rank"),
                      InstanceAccessor<&ProcessGroupWrap::WorldSize>("worldSize"),
                      InstanceAccessor<&ProcessGroupWrap::Backend>("backend"),
                      InstanceMethod<&ProcessGroupWrap::AllreduceSum>("allreduceSum"),
                      InstanceMethod<&ProcessGroupWrap::AllgatherBytes>("allgatherBytes"),
                      InstanceMethod<&ProcessGroupWrap::Barrier>("barrier"),
                      InstanceMethod<&ProcessGroupWrap::Close>("close"),
                  });
  GetAddonData(env).processGroup = Napi::Persistent(constructor);
  exports.Set("joinProcessGroup",
              Napi::Function::New(
                  env,
                  [](const Napi::CallbackInfo& info) -> Napi::Value {
                    Napi::Env env = info.Env();
                    using Joined = std::shared_ptr<DistributedGroup>;
                    return Guarded(env, [&] {
                      if (info.Length() < 1 || !info[0].IsObject())
                        ThrowTypeError(TypeCode::kArgument, "joinProcessGroup(options)");
                      Napi::Object o = info[0].As<Napi::Object>();
                      auto integer = [&](const char* name) {
                        Napi::Value value = o.Get(name);
                        if (!value.IsNumber())
                          ThrowTypeError(TypeCode::kArgument, std::string("joinProcessGroup: ") +
                                                                  name + " must be a number");
                        return value.As<Napi::Number>().Int64Value();
                      };
                      auto text = [&](const char* name) {
                        Napi::Value value = o.Get(name);
                        if (!value.IsString())
                          ThrowTypeError(TypeCode::kArgument, std::string("joinProcessGroup: ") +
                                                                  name + " must be a string");
                        return value.As<Napi::String>().Utf8Value();
                      };
                      GroupOptions options;
                      options.rank = static_cast<int>(integer("rank"));
                      options.worldSize = static_cast<int>(integer("worldSize"));
                      options.masterAddr = text("masterAddr");
                      options.masterPort = static_cast<int>(integer("masterPort"));
                      options.backend = text("backend");
                      options.timeout = std::chrono::milliseconds(integer("timeoutMs"));
                      options.device = ParseDevice(text("device"));
                      return AsyncJob<Joined>::Start(
                          env, [options]() { return DistributedGroup::Join(options); },
                          [](Napi::Env env, Joined& group) -> Napi::Value {
                            auto* handle = new Joined(std::move(group));
                            return GetAddonData(env).processGroup.New(
                                {Napi::External<Joined>::New(env, handle)});
                          });
                    });
                  },
                  "joinProcessGroup"));
}

ProcessGroupWrap::ProcessGroupWrap(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<ProcessGroupWrap>(info) {
  using Joined = std::shared_ptr<DistributedGroup>;
  Guarded(info.Env(), [&] {
    if (info.Length() != 1 || !info[0].IsExternal())
      ThrowTypeError(TypeCode::kArgument, "ProcessGroup is created by joinProcessGroup(options)");
    auto* joined = info[0].As<Napi::External<Joined>>().Data();
    group_ = std::move(*joined);
    delete joined;
  });
}

std::shared_ptr<DistributedGroup> ProcessGroupWrap::FromValue(const Napi::Value& value,
                                                              const char* what) {
  Napi::Env env = value.Env();
  return Guarded(env, [&] {
    if (!value.IsObject() ||
        !value.As<Napi::Object>().InstanceOf(GetAddonData(env).processGroup.Value()))
      ThrowTypeError(TypeCode::kArgument, std::string(what) + " must be a ProcessGroup");
    return Unwrap(value.As<Napi::Object>())->Group();
  });
}

std::shared_ptr<DistributedGroup> ProcessGroupWrap::Group() const {
  if (!group_) ThrowError(ErrorCode::kDisposed, "this ProcessGroup was closed");
  return group_;
}

Napi::Value ProcessGroupWrap::Rank(const Napi::CallbackInfo& info) {
  return Guarded(info.Env(), [&] { return Napi::Number::New(info.Env(), Group()->rank()); });
}

Napi::Value ProcessGroupWrap::WorldSize(const Napi::CallbackInfo& info) {
  return Guarded(info.Env(), [&] { return Napi::Number::New(info.Env(), Group()->worldSize()); });
}

Napi::Value ProcessGroupWrap::Backend(const Napi::CallbackInfo& info) {
  return Guarded(info.Env(), [&] { return Napi::String::New(info.Env(), Group()->backend()); });
}

Napi::Value ProcessGroupWrap::AllreduceSum(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&] {
    if (info.Length() < 1 || !info[0].IsTypedArray() ||
        info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
      ThrowTypeError(TypeCode::kArgument, "allreduceSum(values: Float64Array)");
    auto group = Group();
    Napi::Float64Array input = info[0].As<Napi::Float64Array>();
    torch::Tensor values =
        torch::from_blob(input.Data(), {static_cast<int64_t>(input.ElementLength())},
                         torch::kFloat64)
            .clone();
    return AsyncJob<torch::Tensor>::Start(
        env,
        [group, values]() {
          std::vector<torch::Tensor> tensors{values.to(group->device())};
          group->Wait(group->StartAllreduce(tensors, Channel::kControl), "allreduce");
          return tensors[0].cpu();
        },
        [](Napi::Env env, torch::Tensor& sum) -> Napi::Value {
          auto output = Napi::Float64Array::New(env, static_cast<size_t>(sum.numel()));
          std::memcpy(output.Data(), sum.data_ptr<double>(), sum.numel() * sizeof(double));
          return output;
        });
  });
}

Napi::Value ProcessGroupWrap::AllgatherBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&] {
    if (info.Length() < 1 || !info[0].IsTypedArray() ||
        info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      ThrowTypeError(TypeCode::kArgument, "allgatherBytes(bytes: Uint8Array)");
    auto group = Group();
    Napi::Uint8Array input = info[0].As<Napi::Uint8Array>();
    torch::Tensor bytes =
        torch::from_blob(input.Data(), {static_cast<int64_t>(input.ElementLength())}, torch::kUInt8)
            .clone();
    return AsyncJob<torch::Tensor>::Start(
        env, [group, bytes]() { return torch::cat(group->Allgather(bytes)).cpu(); },
        [](Napi::Env env, torch::Tensor& all) -> Napi::Value {
          auto output = Napi::Uint8Array::New(env, static_cast<size_t>(all.numel()));
          if (all.numel() > 0) std::memcpy(output.Data(), all.data_ptr<uint8_t>(), all.numel());
          return output;
        });
  });
}

Napi::Value ProcessGroupWrap::Barrier(const Napi::CallbackInfo& info) {
  return Guarded(info.Env(), [&] {
    auto group = Group();
    return AsyncJob<bool>::Start(
        info.Env(),
        [group]() {
          group->Barrier();
          return true;
        },
        [](Napi::Env env, bool&) -> Napi::Value { return env.Undefined(); });
  });
}

Napi::Value ProcessGroupWrap::Close(const Napi::CallbackInfo& info) {
  group_.reset();  // collectives in flight hold the group; it goes with the last
  return info.Env().Undefined();
}

}  // namespace crackseg
