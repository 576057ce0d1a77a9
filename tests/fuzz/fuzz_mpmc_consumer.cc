// Random bytes as an MPMC ring's slots and positions: a consumer must hand out only
// messages inside the data area and within max_message, report kCorrupted otherwise, and
// never spin forever (libFuzzer's -timeout catches a hang).
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "shmd/dataplane/mpmc_ring.h"

namespace {

constexpr uint32_t kSlots = 8;
constexpr uint32_t kMaxMessage = 40;

std::shared_ptr<shmd::Segment> Ring() {
  static std::shared_ptr<shmd::Segment> ring = [] {
    shmd::ShmDir dir{"/dev/shm", "fuzz-" + std::to_string(getpid())};
    auto created =
        shmd::CreateMpmcRing(dir, "ring", {.slot_count = kSlots, .max_message = kMaxMessage});
    if (!created.ok()) std::abort();
    (void)shmd::Segment::Remove(dir, "ring");  // the mapping stays; no file is left behind
    return std::make_shared<shmd::Segment>(std::move(created).value());
  }();
  return ring;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto ring = Ring();
  if (size < 16) return 0;
  uint64_t enqueue, dequeue;
  std::memcpy(&enqueue, data, 8);
  std::memcpy(&dequeue, data + 8, 8);
  // Keep the positions near each other often enough to reach the slot logic.
  if ((enqueue & 1) != 0) enqueue = dequeue + (enqueue >> 1) % (2 * kSlots);
  const uint64_t data_size = ring->data_size();
  std::memset(ring->data(), 0, data_size);
  std::memcpy(ring->data(), data + 16, std::min<size_t>(size - 16, data_size));
  auto& control = ring->control<shmd::layout::MpmcControl>();
  control.enqueue_position.store(enqueue);
  control.dequeue_position.store(dequeue);
  ring->header().state.store(static_cast<uint32_t>(shmd::layout::ObjectState::kReady));
  auto consumer = shmd::MpmcConsumer::Attach(ring);
  if (!consumer.ok()) return 0;
  const auto* begin = reinterpret_cast<const std::byte*>(ring->data());
  for (int i = 0; i < 64; ++i) {
    shmd::MessageView m;
    shmd::Status s = consumer->TryPeek(&m);
    if (s == shmd::Status::kEmpty) break;
    if (s != shmd::Status::kOk) continue;  // kCorrupted: reported, skipped
    if (m.size == 0 || m.size > kMaxMessage || m.data < begin ||
        m.data + m.size > begin + data_size) {
      std::abort();  // a message outside the data area: the bug this target hunts
    }
    volatile std::byte sink = m.data[m.size - 1];
    (void)sink;
    consumer->Release();
  }
  return 0;
}
