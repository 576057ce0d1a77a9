// Results of the hot path: no allocation, no exception. Each value tells "try again"
// (kFull, kEmpty, kTimeout) apart from "stop" (kPeerGone, kClosed) and from a bug in
// the caller or the data (kTooLarge, kInvalidArgument, kCorrupted).
#pragma once

#include <cstdint>

namespace shmd {

enum class [[nodiscard]] Status : uint8_t{
    kOk = 0,
    kFull,             // no room now; retry, or use the blocking form
    kEmpty,            // nothing to read now; retry, or use the blocking form
    kTimeout,          // the timed form's deadline passed
    kPeerGone,         // the other side died (or detached) and nothing is left to wait for
    kClosed,           // the object was deleted
    kTooLarge,         // the message exceeds the ring's maximum, or the caller's buffer
    kInvalidArgument,  // e.g. an empty message, or a call out of sequence
    kCorrupted,        // shared memory holds an impossible record; it was not read
    kLapped,           // broadcast: the subscriber was overrun; see its loss counter
    kCancelled,        // request/response: the caller cancelled the call
};

const char* StatusName(Status status);

}  // namespace shmd
