// Errors by kind: a wrong JS type is a TypeError, a value out of range a RangeError, anything else
// an Error; each carries a stable `code` (ERR_CRACKSEG_*) that ts/errors.ts re-exports. Native code
// on any thread throws NativeError; Guarded and AsyncJob turn it (and libtorch's c10::Error) into
// the JS error.
#pragma once

#include <c10/util/Exception.h>
#include <napi.h>

#include <stdexcept>
#include <string>

namespace crackseg {

// Codes of TypeErrors: an argument of the wrong JS type or form; a tensor of the wrong dtype.
enum class TypeCode { kArgument, kDtype };
// Codes of RangeErrors: a value outside what is allowed; a tensor of the wrong shape.
enum class RangeCode { kRange, kShape };
// Codes of Errors: a disposed object; a spent or unknown tensor handle; no parameter or method of
// that name; a device this machine lacks; a file that cannot be read or written; a module that
// breaks docs/model-interface.md; libtorch's own error; out of host memory or an unknown exception;
// a process group that cannot be joined or whose collective failed (a peer gone, a timeout).
enum class ErrorCode {
  kDisposed,
  kHandle,
  kNotFound,
  kDevice,
  kIo,
  kModule,
  kTorch,
  kNative,
  kDistributed
};

enum class ErrorKind { kError, kTypeError, kRangeError };

// A native failure on its way to JS: thrown on any thread, converted on the JS thread.
class NativeError : public std::runtime_error {
 public:
  NativeError(ErrorKind kind, const char* code, const std::string& message)
      : std::runtime_error(message), kind(kind), code(code) {}
  ErrorKind kind;
  const char* code;  // ERR_CRACKSEG_*
};

// The code of each enumerator, as JS sees it.
const char* CodeName(TypeCode code);
const char* CodeName(RangeCode code);
const char* CodeName(ErrorCode code);

// The one helper per kind: throws a NativeError with that kind and code.
[[noreturn]] void ThrowTypeError(TypeCode code, const std::string& message);
[[noreturn]] void ThrowRangeError(RangeCode code, const std::string& message);
[[noreturn]] void ThrowError(ErrorCode code, const std::string& message);

// The exception in flight as a NativeError: c10::Error and the other std::exceptions libtorch
// throws (the TorchScript interpreter's) become ERR_CRACKSEG_TORCH (c10::Error's message without
// the C++ backtrace); std::bad_alloc and unknown exceptions ERR_CRACKSEG_NATIVE.
NativeError CurrentNativeError();

// `error` as a JS error of its kind with its `code` property.
Napi::Error ToJsError(Napi::Env env, const NativeError& error);

// {name: code} for every code: the addon exports it as `errorCodes`, for ts/errors.ts's test.
Napi::Object ErrorCodesToJs(Napi::Env env);

// Runs `body` on the JS thread; a C++ exception becomes the thrown JS error (Napi errors, which
// carry a pending JS exception, pass through).
template <typename Body>
auto Guarded(Napi::Env env, Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    throw ToJsError(env, CurrentNativeError());
  }
}

// A plain entry point run under Guarded: how every function of the addon is registered.
template <Napi::Value (*Function)(const Napi::CallbackInfo&)>
Napi::Value GuardedEntry(const Napi::CallbackInfo& info) {
  return Guarded(info.Env(), [&] { return Function(info); });
}

}  // namespace crackseg
