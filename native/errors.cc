#include "errors.h"

#include <new>

namespace crackseg {
namespace {

struct CodeEntry {
  const char* name;  // the key of `errorCodes`
  const char* code;
};

constexpr CodeEntry kTypeCodes[] = {
    {"argument", "ERR_CRACKSEG_ARGUMENT"},
    {"dtype", "ERR_CRACKSEG_DTYPE"},
};
constexpr CodeEntry kRangeCodes[] = {
    {"range", "ERR_CRACKSEG_RANGE"},
    {"shape", "ERR_CRACKSEG_SHAPE"},
};
constexpr CodeEntry kErrorCodes[] = {
    {"disposed", "ERR_CRACKSEG_DISPOSED"},
    {"handle", "ERR_CRACKSEG_HANDLE"},
    {"notFound", "ERR_CRACKSEG_NOT_FOUND"},
    {"device", "ERR_CRACKSEG_DEVICE"},
    {"io", "ERR_CRACKSEG_IO"},
    {"module", "ERR_CRACKSEG_MODULE"},
    {"torch", "ERR_CRACKSEG_TORCH"},
    {"native", "ERR_CRACKSEG_NATIVE"},
    {"distributed", "ERR_CRACKSEG_DISTRIBUTED"},
};

}  // namespace

const char* CodeName(TypeCode code) { return kTypeCodes[static_cast<int>(code)].code; }
const char* CodeName(RangeCode code) { return kRangeCodes[static_cast<int>(code)].code; }
const char* CodeName(ErrorCode code) { return kErrorCodes[static_cast<int>(code)].code; }

void ThrowTypeError(TypeCode code, const std::string& message) {
  throw NativeError(ErrorKind::kTypeError, CodeName(code), message);
}

void ThrowRangeError(RangeCode code, const std::string& message) {
  throw NativeError(ErrorKind::kRangeError, CodeName(code), message);
}

void ThrowError(ErrorCode code, const std::string& message) {
  throw NativeError(ErrorKind::kError, CodeName(code), message);
}

NativeError CurrentNativeError() {
  try {
    throw;
  } catch (const NativeError& e) {
    return e;
  } catch (const c10::Error& e) {
    return {ErrorKind::kError, CodeName(ErrorCode::kTorch), e.what_without_backtrace()};
  } catch (const std::bad_alloc& e) {
    return {ErrorKind::kError, CodeName(ErrorCode::kNative), e.what()};
  } catch (const std::exception& e) {
    // What else throws is libtorch (the TorchScript interpreter rethrows as std::runtime_error).
    return {ErrorKind::kError, CodeName(ErrorCode::kTorch), e.what()};
  } catch (...) {
    return {ErrorKind::kError, CodeName(ErrorCode::kNative), "unknown native error"};
  }
}

Napi::Error ToJsError(Napi::Env env, const NativeError& error) {
  Napi::Error js = error.kind == ErrorKind::kTypeError    ? Napi::TypeError::New(env, error.what())
                   : error.kind == ErrorKind::kRangeError ? Napi::RangeError::New(env, error.what())
                                                          : Napi::Error::New(env, error.what());
  js.Set("code", Napi::String::New(env, error.code));
  return js;
}

Napi::Object ErrorCodesToJs(Napi::Env env) {
  Napi::Object codes = Napi::Object::New(env);
  auto add = [&](const auto& table) {
    for (const CodeEntry& entry : table) codes.Set(entry.name, entry.code);
  };
  add(kTypeCodes);
  add(kRangeCodes);
  add(kErrorCodes);
  return codes;
}

}  // namespace crackseg
