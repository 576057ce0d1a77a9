// Floor row: the round trip no IPC between two cores can beat. Two processes flip one word
// in a shared page: the sender writes an odd value and waits for the next even one, the
// receiver waits for the odd value and answers with the even one. Each round trip is two
// cache-line transfers and nothing else. There is no stream figure, and the message size
// does not matter (the row is measured once, at 8 bytes).
#include <sys/mman.h>

#include <atomic>
#include <memory>
#include <new>
#include <string>

#include "bench/ipc/harness.h"
#include "bench/ipc/mechanism.h"

namespace shmd::bench {
namespace {

struct alignas(128) SharedWord {
  std::atomic<uint64_t> value;
};
static_assert(std::atomic<uint64_t>::is_always_lock_free);

// A pause per poll, as any sane spin loop has: measured here it is no slower than bare
// loads (leaving the loop without one costs a memory-ordering pipeline flush instead).
inline bool WaitFor(const std::atomic<uint64_t>& word, uint64_t want, bool yield) {
  return SpinUntil([&] { return word.load(std::memory_order_acquire) == want; },
                   /*relax=*/true, yield);
}

Status NoProgress(uint64_t round, uint64_t want, const std::atomic<uint64_t>& word) {
  return Status::Error("round trip " + std::to_string(round) + ": the shared word stayed at " +
                       std::to_string(word.load()) + " for 10 s, waiting for " +
                       std::to_string(want) + " (is the peer running?)");
}

class CachelineEndpoint final : public Endpoint {
 public:
  explicit CachelineEndpoint(SharedWord* shared) : word_(shared->value) {}

  Status PingPongInitiate(const RunSpec& spec, std::vector<int64_t>* rtt_ns) override {
    const uint64_t total = spec.warmup + spec.count;
    int64_t last_send = 0;
    for (uint64_t i = 0; i < total; ++i) {
      word_.store(2 * i + 1, std::memory_order_release);
      // Stamped after the store, as in ChannelEndpoint: the clock read (which costs far more
      // inside this loop than back to back) overlaps the flight rather than adding to it.
      const int64_t sent = NowNs();
      if (i >= spec.warmup) (*rtt_ns)[i - spec.warmup] = sent - last_send;
      last_send = sent;
      if (!WaitFor(word_, 2 * i + 2, spec.shared_cpu)) [[unlikely]]
        return NoProgress(i, 2 * i + 2, word_);
    }
    return {};
  }

  Status PingPongEcho(const RunSpec& spec) override {
    const uint64_t total = spec.warmup + spec.count;
    for (uint64_t i = 0; i < total; ++i) {
      if (!WaitFor(word_, 2 * i + 1, spec.shared_cpu)) [[unlikely]]
        return NoProgress(i, 2 * i + 1, word_);
      word_.store(2 * i + 2, std::memory_order_release);
    }
    return {};
  }

 private:
  std::atomic<uint64_t>& word_;
};

class CachelineMechanism final : public Mechanism {
 public:
  std::string_view name() const override { return "cacheline"; }
  std::string_view note() const override {
    return "cacheline: two processes flipping one shared 8-byte word, the floor of a round "
           "trip between these CPUs (no stream figure; size does not apply)";
  }
  bool HasStream() const override { return false; }
  size_t fixed_size() const override { return sizeof(uint64_t); }
  bool is_placement_probe() const override { return true; }

  Status Prepare(const RunSpec&) override {
    void* page =
        mmap(nullptr, kPageBytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) return ErrnoError("mmap of the shared page");
    page_ = page;
    new (page_) SharedWord{};
    return {};
  }

  Status Open(Side, std::unique_ptr<Endpoint>* endpoint) override {
    *endpoint = std::make_unique<CachelineEndpoint>(static_cast<SharedWord*>(page_));
    return {};
  }

  void Teardown() override {
    if (page_ != nullptr) munmap(page_, kPageBytes);
    page_ = nullptr;
  }

 private:
  static constexpr size_t kPageBytes = 4096;
  void* page_ = nullptr;
};

}  // namespace

std::unique_ptr<Mechanism> MakeCacheline() { return std::make_unique<CachelineMechanism>(); }

}  // namespace shmd::bench
