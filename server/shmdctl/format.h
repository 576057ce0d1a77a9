// Values as an operator reads them: sizes in binary units, modes in octal, local times,
// enum values as lowercase words.
#pragma once

#include <cstdint>
#include <string>

#include <google/protobuf/duration.pb.h>
#include <google/protobuf/timestamp.pb.h>

#include "shmd/v1/events.pb.h"
#include "shmd/v1/resources.pb.h"

namespace shmd::ctl {

// "512B", "64KiB", "1.5MiB": the units ParseByteSize reads, so exact sizes can be typed back.
std::string Bytes(uint64_t bytes);
// "1MiB (1048576 bytes)", or just "512 bytes" below 1KiB.
std::string BytesExact(uint64_t bytes);
// "0660".
std::string Mode(uint32_t mode);
// "12%"; "<1%" for a part too small to round up to 1%, "-" when `whole` is 0.
std::string Percent(uint64_t part, uint64_t whole);
// "2024-05-01 12:00:00.123" in local time; "-" when unset.
std::string Time(const google::protobuf::Timestamp& time);
// "3d 4h 5m 6s", leading zero units left out.
std::string Duration(const google::protobuf::Duration& duration);

std::string KindName(v1::RingKind kind);          // "spsc"
std::string RoleName(v1::Role role);              // "producer"
std::string StateName(v1::EndpointState state);   // "live"
std::string EventTypeName(v1::Event::Type type);  // "created", "attached", "died"

}  // namespace shmd::ctl
