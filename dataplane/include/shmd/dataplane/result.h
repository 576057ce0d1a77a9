// Results of the setup path (create, open, attach): a value, or an Error whose message
// says what was wrong and what to do. The hot path uses the Status enum (status.h).
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace shmd {

enum class ErrorCode {
  kInvalidArgument,   // a bad name, size, capacity or option
  kNotFound,          // no such object
  kAlreadyExists,     // an object of that name exists (with another spec)
  kPermissionDenied,  // the file's mode or owner refuses this process
  kNoSpace,           // the shm filesystem is full
  kVersionMismatch,   // the object was made by another layout version
  kWrongKind,         // the object is not the kind asked for
  kCorrupted,         // the header or contents do not make sense; nothing was read
  kNotReady,          // the object is still being created, or its creator died doing so
  kBusy,              // an exclusive role is held by a live endpoint, or no slot is free
  kSystem,            // an unexpected system call failure (errno in the message)
  // From the control plane (shmd::Client), where gRPC's codes have no data-plane twin:
  kQuotaExceeded,       // RESOURCE_EXHAUSTED for a daemon limit (quota, object size, count)
  kFailedPrecondition,  // the object's state refuses the call (attached, role taken)
  kUnavailable,         // no daemon answers at the address
  kDeadlineExceeded,    // the daemon did not answer within the call's deadline
};

const char* ErrorCodeName(ErrorCode code);

class Error {
 public:
  Error(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  ErrorCode code_;
  std::string message_;
};

// Either a T or an Error, in the spirit of std::expected (C++23).
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & {
    assert(ok());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  const Error& error() const {
    assert(!ok());
    return std::get<1>(v_);
  }

 private:
  std::variant<T, Error> v_;
};

// For operations with nothing to return.
struct Ok {};
using VoidResult = Result<Ok>;

// "errno 28 (No space left on device)" for messages.
std::string ErrnoText(int err);

}  // namespace shmd
