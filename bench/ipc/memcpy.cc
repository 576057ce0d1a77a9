// Floor row: single-core copy bandwidth at each size. Every IPC row that copies pays at
// least this per copy (a kernel transport pays it twice: into the kernel and out). One
// process, pinned to the receiver's CPU; copies between two hot buffers, so it is the
// cache-resident ceiling, not DRAM bandwidth. No round trip.
#include <cstdint>
#include <cstring>
#include <memory>

#include "bench/ipc/harness.h"
#include "bench/ipc/mechanism.h"
#include "bench/ipc/message.h"

namespace shmd::bench {
namespace {

class MemcpyEndpoint final : public Endpoint {
 public:
  Status StreamReceive(const RunSpec& spec, StreamTiming* timing) override {
    MessageBuffer source(spec.size);
    MessageBuffer target(spec.size);
    timing->first_ns = NowNs();
    for (uint64_t i = 0; i < spec.count; ++i) {
      std::memcpy(target.data(), source.data(), spec.size);
      // Tells the compiler the copy's result is used, so no iteration is optimized away.
      asm volatile("" : : "r"(target.data()) : "memory");
    }
    timing->last_ns = NowNs();
    timing->messages = spec.count;
    Status error;
    if (!MessageChecker(spec.size).Check(target.data(), 0, &error)) return error;
    return {};
  }
};

class MemcpyMechanism final : public Mechanism {
 public:
  std::string_view name() const override { return "memcpy"; }
  std::string_view note() const override {
    return "memcpy: one core copying each size between two cache-hot buffers, the floor of "
           "one copy (a kernel transport makes two; no round trip)";
  }
  bool HasPingPong() const override { return false; }
  int processes() const override { return 1; }

  Status Prepare(const RunSpec&) override { return {}; }
  Status Open(Side, std::unique_ptr<Endpoint>* endpoint) override {
    *endpoint = std::make_unique<MemcpyEndpoint>();
    return {};
  }
  void Teardown() override {}
};

}  // namespace

std::unique_ptr<Mechanism> MakeMemcpy() { return std::make_unique<MemcpyMechanism>(); }

}  // namespace shmd::bench
