// What the MPMC and broadcast rings share: both are rings of fixed-size slots (layout.h,
// SlotHeader then payload). Internal to the data plane.
#pragma once

#include <cstdint>
#include <string_view>

#include "shmd/dataplane/layout.h"
#include "shmd/dataplane/result.h"
#include "shmd/dataplane/segment.h"

namespace shmd::internal {

// Process-local view of a mapped slot ring: addresses and geometry, read once.
template <class Control>
struct SlotRingView {
  Control* control = nullptr;
  uint8_t* data = nullptr;
  uint64_t capacity = 0;  // slot count
  uint64_t mask = 0;
  uint32_t slot_size = 0;
  uint32_t max_message = 0;

  explicit SlotRingView(const Segment* segment = nullptr) {
    if (segment == nullptr) return;
    control = &segment->control<Control>();
    data = segment->data();
    capacity = segment->params().capacity;
    mask = capacity - 1;
    slot_size = segment->params().slot_size;
    max_message = segment->params().max_message;
  }
  layout::SlotHeader& HeaderAt(uint64_t position) const {
    return *reinterpret_cast<layout::SlotHeader*>(data + (position & mask) * slot_size);
  }
  // The payload follows the 16-byte header: 8-aligned, slot_size - 16 bytes of room.
  uint8_t* SlotPayload(uint64_t position) const {
    return data + (position & mask) * slot_size + layout::kSlotHeaderSize;
  }
};

// A slot ring's spec, checked before anything is created; `kind` names it in messages
// ("mpmc ring", "broadcast ring").
VoidResult CheckSlotRingSpec(std::string_view kind, std::string_view name, uint32_t slot_count,
                             uint32_t max_message);

}  // namespace shmd::internal
