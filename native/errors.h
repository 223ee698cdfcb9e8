// Turns C++ exceptions (c10::Error, std::exception) into JS errors carrying libtorch's message.
#pragma once

#include <c10/util/Exception.h>
#include <napi.h>

#include <exception>
#include <string>

namespace crackseg {

// The message of the exception in flight: libtorch's text without its C++ backtrace.
inline std::string CurrentExceptionMessage() {
  try {
    throw;
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "unknown native error";
  }
}

// Runs `body` on the JS thread; a C++ exception becomes a thrown JS Error (Napi errors pass
// through).
template <typename Body>
auto Guarded(Napi::Env env, Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    throw Napi::Error::New(env, CurrentExceptionMessage());
  }
}

}  // namespace crackseg
