// Request/response: geometry, names, the service's ring, and what client and server share
// (rpc.h).
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdio>
#include <string>

#include "rpc_internal.h"
#include "shmd/dataplane/endpoints.h"

namespace shmd {
namespace {

constexpr uint32_t kMaxPayload = (16u << 20) - 64;  // a slot or record of at most 16 MiB
constexpr uint64_t kMaxReplyRing = uint64_t{1} << 30;

}  // namespace

Result<MpmcRingSpec> RpcRequestRingSpec(const RpcSpec& spec) {
  if (spec.max_request == 0 || spec.max_request > kMaxPayload) {
    return Error(ErrorCode::kInvalidArgument, "rpc max_request must be 1 to " +
                                                  std::to_string(kMaxPayload) + " bytes, not " +
                                                  std::to_string(spec.max_request));
  }
  if (spec.queue_depth < 2 || spec.queue_depth > 65536 || !std::has_single_bit(spec.queue_depth)) {
    return Error(ErrorCode::kInvalidArgument,
                 "rpc queue_depth must be a power of two from 2 to 65536, not " +
                     std::to_string(spec.queue_depth));
  }
  return MpmcRingSpec{
      .slot_count = spec.queue_depth,
      .max_message = static_cast<uint32_t>(sizeof(RpcRequestHeader)) + spec.max_request};
}

Result<SpscRingSpec> RpcReplyRingSpec(const RpcClientOptions& options) {
  if (options.max_response == 0 || options.max_response > kMaxPayload) {
    return Error(ErrorCode::kInvalidArgument, "rpc max_response must be 1 to " +
                                                  std::to_string(kMaxPayload) + " bytes, not " +
                                                  std::to_string(options.max_response));
  }
  if (options.max_in_flight == 0 || options.max_in_flight > 4096) {
    return Error(ErrorCode::kInvalidArgument, "rpc max_in_flight must be 1 to 4096, not " +
                                                  std::to_string(options.max_in_flight));
  }
  const uint32_t max_message =
      static_cast<uint32_t>(sizeof(RpcResponseHeader)) + options.max_response;
  // Room for every call in flight to be answered at once, plus one record of padding at
  // the wrap; and at least twice the largest record (the SPSC ring's own rule).
  const uint64_t bytes = std::max<uint64_t>(
      {4096, (uint64_t{options.max_in_flight} + 1) * layout::RecordSize(max_message),
       2 * uint64_t{max_message} + 64});
  const uint64_t capacity = std::bit_ceil(bytes);
  if (capacity > kMaxReplyRing) {
    return Error(ErrorCode::kInvalidArgument,
                 "rpc reply ring would need " + std::to_string(capacity) +
                     " bytes (max_in_flight x max_response); the limit is 1 GiB");
  }
  return SpscRingSpec{.capacity = capacity, .max_message = max_message};
}

std::string RpcReplyRingName(std::string_view service, std::string_view suffix) {
  return std::string(service) + ".reply." + std::string(suffix);
}

VoidResult CreateRpcService(const ShmDir& dir, std::string_view service, const RpcSpec& spec,
                            const CreateOptions& options) {
  Result<MpmcRingSpec> ring = RpcRequestRingSpec(spec);
  if (!ring.ok()) return ring.error();
  CreateOptions with_mode = options;
  with_mode.mode = spec.mode;
  Result<Segment> made = CreateMpmcRing(dir, service, *ring, with_mode);
  if (!made.ok()) return made.error();
  return Ok{};
}

VoidResult RemoveRpcService(const ShmDir& dir, std::string_view service) {
  return Segment::Remove(dir, service);
}

namespace internal {

bool RoleLive(const Segment& segment, layout::EndpointRole role, bool check_process) {
  for (uint32_t i = 0; i < layout::kMaxEndpoints; ++i) {
    const layout::EndpointSlot& slot = segment.endpoints().slots[i];
    // Acquire pairs with ClaimEndpoint's release store of kLive: the role is filled in.
    if (slot.state.load(std::memory_order_acquire) !=
        static_cast<uint32_t>(layout::EndpointState::kLive)) {
      continue;
    }
    if (slot.role.load(std::memory_order_relaxed) != static_cast<uint32_t>(role)) continue;
    if (check_process && ClearIfDead(segment, i)) continue;
    return true;
  }
  return false;
}

bool ValidSuffix(const char (&suffix)[kRpcSuffixSize]) {
  size_t n = 0;
  for (; n < kRpcSuffixSize && suffix[n] != '\0'; ++n) {
    const char c = suffix[n];
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok) return false;
  }
  return n > 0 && n < kRpcSuffixSize;
}

std::string NewRpcSuffix() {
  // pid and a counter make it unique among live processes; the random part keeps a later
  // process that gets the same pid from reusing a name (and so a dead client's ring).
  static std::atomic<uint32_t> counter{0};
  uint32_t random = 0;
  if (getrandom(&random, sizeof random, 0) != sizeof random) {
    random = static_cast<uint32_t>(Clock::now().time_since_epoch().count());
  }
  char buf[kRpcSuffixSize];
  std::snprintf(buf, sizeof buf, "%u-%u-%08x", static_cast<unsigned>(getpid()),
                counter.fetch_add(1, std::memory_order_relaxed), random);
  return buf;
}

}  // namespace internal
}  // namespace shmd
