#include <cstring>
#include <string>

#include "shmd/dataplane/result.h"
#include "shmd/dataplane/status.h"

namespace shmd {

const char* ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return "invalid argument";
    case ErrorCode::kNotFound:
      return "not found";
    case ErrorCode::kAlreadyExists:
      return "already exists";
    case ErrorCode::kPermissionDenied:
      return "permission denied";
    case ErrorCode::kNoSpace:
      return "no space";
    case ErrorCode::kVersionMismatch:
      return "version mismatch";
    case ErrorCode::kWrongKind:
      return "wrong kind";
    case ErrorCode::kCorrupted:
      return "corrupted";
    case ErrorCode::kNotReady:
      return "not ready";
    case ErrorCode::kBusy:
      return "busy";
    case ErrorCode::kSystem:
      return "system error";
    case ErrorCode::kQuotaExceeded:
      return "quota exceeded";
    case ErrorCode::kFailedPrecondition:
      return "failed precondition";
    case ErrorCode::kUnavailable:
      return "unavailable";
    case ErrorCode::kDeadlineExceeded:
      return "deadline exceeded";
  }
  return "unknown error";
}

const char* StatusName(Status status) {
  switch (status) {
    case Status::kOk:
      return "ok";
    case Status::kFull:
      return "full";
    case Status::kEmpty:
      return "empty";
    case Status::kTimeout:
      return "timeout";
    case Status::kPeerGone:
      return "peer gone";
    case Status::kClosed:
      return "closed";
    case Status::kTooLarge:
      return "too large";
    case Status::kInvalidArgument:
      return "invalid argument";
    case Status::kCorrupted:
      return "corrupted";
    case Status::kLapped:
      return "lapped";
    case Status::kCancelled:
      return "cancelled";
  }
  return "unknown status";
}

std::string ErrnoText(int err) {
  char buf[128];
  // GNU strerror_r returns the message (possibly not in buf).
  const char* text = strerror_r(err, buf, sizeof buf);
  return "errno " + std::to_string(err) + " (" + text + ")";
}

}  // namespace shmd
