// Random bytes as an SPSC ring's data area and consumer position: the consumer must
// report corruption or hand out messages that lie wholly inside the data area, never
// crash, never loop forever.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "shmd/dataplane/spsc_ring.h"

namespace {

constexpr uint64_t kCapacity = 4096;

std::shared_ptr<shmd::Segment> Ring() {
  static std::shared_ptr<shmd::Segment> ring = [] {
    shmd::ShmDir dir{"/dev/shm", "fuzz-" + std::to_string(getpid())};
    auto created = shmd::CreateSpscRing(dir, "ring", {.capacity = kCapacity, .max_message = 1000});
    if (!created.ok()) std::abort();
    (void)shmd::Segment::Remove(dir, "ring");  // the mapping stays; no file is left behind
    return std::make_shared<shmd::Segment>(std::move(created).value());
  }();
  return ring;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto ring = Ring();
  if (size < 8) return 0;
  uint64_t position;
  std::memcpy(&position, data, 8);
  std::memset(ring->data(), 0, kCapacity);
  std::memcpy(ring->data(), data + 8, std::min<size_t>(size - 8, kCapacity));
  auto& control = ring->control<shmd::layout::SpscControl>();
  control.consumer_position.store(position);
  control.producer_position.store(position);
  // Deleted objects refuse new endpoints' waits but not TryPeek; attach directly.
  ring->header().state.store(static_cast<uint32_t>(shmd::layout::ObjectState::kReady));
  auto consumer = shmd::SpscConsumer::Attach(ring);
  if (!consumer.ok()) {
    // Refusing a corrupted position is the right answer; anything else is not.
    if (consumer.error().code() != shmd::ErrorCode::kCorrupted) std::abort();
    return 0;
  }
  const auto* begin = reinterpret_cast<const std::byte*>(ring->data());
  for (int i = 0; i < 1000; ++i) {
    shmd::MessageView m;
    shmd::Status s = consumer->TryPeek(&m);
    if (s != shmd::Status::kOk) break;
    if (m.size == 0 || m.size > 1000 || m.data < begin || m.data + m.size > begin + kCapacity) {
      std::abort();  // a message outside the data area: the bug this target hunts
    }
    volatile std::byte sink = m.data[m.size - 1];
    (void)sink;
    consumer->Release();
  }
  return 0;
}
