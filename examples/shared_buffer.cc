// shared_buffer: one writer and reader processes sharing a struct in a region made by the
// daemon, kept consistent by a seqlock; then the region grows and the readers remap. The
// shmd way to do the article's shared_buffer_t with a pthread mutex and condition
// variable ("Shared memory" section).
//
//   shared_buffer [--listen ADDRESS] [--readers N] [--updates N]
//
// The writer (this process) asks the daemon for a 4 KiB region, maps it (Client::Open
// <Segment>) and lays out a Buffer at its start: fixed-width fields and a table of
// entries found by offset, never by pointer (each process maps the region at its own
// address). It starts N readers (posix_spawn of this program) and updates the buffer
// --updates times; every field of update v is derived from v, so a reader can tell a
// consistent snapshot from a mixed one. Halfway, it asks the daemon to grow the region to
// 64 KiB (ResizeRegion: the file grows and its generation is bumped), remaps, and from
// then on writes a 16 times larger table. Readers see the generation change and remap
// (Segment::Remap) before reading past their old mapping.
//
// Why a seqlock and not a mutex: a process that dies holding a shared mutex leaves it
// locked (robust mutexes only move the problem), and readers would block the writer. With
// a seqlock the writer never waits and a reader only retries, so one dead process stops
// nobody. It suits one writer and small snapshots read often.
//
// Each reader prints how many snapshots it read, how many torn reads it retried and how
// many inconsistent snapshots it saw (must be 0), and exits non-zero otherwise.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "shmd/client/client.h"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;
using std::memory_order_acquire, std::memory_order_relaxed, std::memory_order_release;

// At offset 0 of the region's data. Fixed width; every field a lock-free atomic (several
// processes read while one writes: plain fields would be a data race).
struct Buffer {
  std::atomic<uint64_t> sequence;        // 0   seqlock: odd while the writer is mid-update
  std::atomic<uint64_t> version;         // 8   the update every field below derives from
  std::atomic<uint64_t> entry_count;     // 16  entries in the table
  std::atomic<uint64_t> entries_offset;  // 24  the table, from the start of the data
  std::atomic<uint64_t> checksum;        // 32  Checksum(version, entry_count)
  std::atomic<uint64_t> done;            // 40  1 in the last update
  std::atomic<uint32_t> readers_ready;   // 48  readers that have mapped the region
  uint32_t reserved[3];                  // 52
};
static_assert(sizeof(Buffer) == 64 && alignof(Buffer) == 8);
static_assert(offsetof(Buffer, checksum) == 32 && offsetof(Buffer, readers_ready) == 48);
static_assert(std::atomic<uint64_t>::is_always_lock_free);

constexpr uint64_t kSmallRegion = 4096, kLargeRegion = 64 * 1024;
constexpr uint64_t kSmallTable = 256, kLargeTable = 4096;  // entries (8 bytes each)
constexpr uint64_t kEntriesOffset = sizeof(Buffer);
static_assert(kEntriesOffset + kSmallTable * 8 <= kSmallRegion);
static_assert(kEntriesOffset + kLargeTable * 8 <= kLargeRegion);
constexpr auto kTimeout = std::chrono::seconds(60);

uint64_t Checksum(uint64_t version, uint64_t count) { return version * 0x9E3779B97F4A7C15 ^ count; }
uint64_t Entry(uint64_t version, uint64_t i) { return version * 1'000'003 + i; }

struct Options {
  std::string listen;
  uint32_t readers = 2;
  uint64_t updates = 100'000;
  std::string read;  // set in a reader: the region's id
  uint32_t index = 0;
};

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "shared_buffer: %s\n", what.c_str());
  std::exit(1);
}

template <class T>
T Must(shmd::Result<T> r, const std::string& what) {
  if (!r.ok()) Fail(what + ": " + r.error().message());
  return std::move(r).value();
}

shmd::Client Connect(const Options& o) {
  shmd::ClientOptions options;
  options.target = o.listen;
  return Must(shmd::Client::Connect(options), "connecting to the daemon");
}

Buffer& BufferIn(shmd::Segment& region) { return *reinterpret_cast<Buffer*>(region.data()); }
std::atomic<uint64_t>* Table(shmd::Segment& region, uint64_t offset) {
  return reinterpret_cast<std::atomic<uint64_t>*>(region.data() + offset);
}

// The writer's side of the seqlock. Only this process stores to the buffer's fields.
void Write(shmd::Segment& region, uint64_t version, uint64_t count, bool done) {
  Buffer& b = BufferIn(region);
  const uint64_t s = b.sequence.load(memory_order_relaxed);  // ours alone: no ordering
  b.sequence.store(s + 1, memory_order_relaxed);
  // (W1) Orders the odd sequence before every field store below: a reader whose loads see
  // any of them sees, after its fence (R2), a sequence other than the even one it began at.
  std::atomic_thread_fence(memory_order_release);
  b.version.store(version, memory_order_relaxed);
  b.entry_count.store(count, memory_order_relaxed);
  b.entries_offset.store(kEntriesOffset, memory_order_relaxed);
  b.checksum.store(Checksum(version, count), memory_order_relaxed);
  b.done.store(done ? 1 : 0, memory_order_relaxed);
  std::atomic<uint64_t>* table = Table(region, kEntriesOffset);
  for (uint64_t i = 0; i < count; ++i) table[i].store(Entry(version, i), memory_order_relaxed);
  // (W2) Publishes the fields: a reader that loads s + 2 with acquire (R1) sees them all.
  b.sequence.store(s + 2, memory_order_release);
}

int Read(const Options& o) {
  shmd::Client client = Connect(o);
  auto region = Must(client.Open<shmd::Segment>(o.read), "mapping the region");
  // (G) Acquire pairs with Segment::Resize's release increment: seeing the new generation
  // means the file has its new size, so Remap maps all of it.
  uint64_t generation = region->header().generation.load(memory_order_acquire);
  const uint64_t first_generation = generation, first_size = region->size();
  BufferIn(*region).readers_ready.fetch_add(1, memory_order_relaxed);  // a flag: no data

  uint64_t snapshots = 0, torn = 0, inconsistent = 0, remaps = 0;
  const auto give_up = Clock::now() + kTimeout;
  for (;;) {
    if (Clock::now() > give_up) Fail("reader: the writer never finished");
    const uint64_t g = region->header().generation.load(memory_order_acquire);  // (G)
    if (g != generation) {
      if (auto r = region->Remap(); !r.ok()) Fail("reader: remapping: " + r.error().message());
      generation = g;
      ++remaps;
    }
    Buffer& b = BufferIn(*region);  // Remap may have moved the mapping: look again
    // (R1) Acquire pairs with (W2): every field of update s1 is visible to the loads below.
    const uint64_t s1 = b.sequence.load(memory_order_acquire);
    if (s1 % 2 == 1) {  // the writer is mid-update
      ++torn;
      std::this_thread::yield();
      continue;
    }
    const uint64_t version = b.version.load(memory_order_relaxed);
    const uint64_t count = b.entry_count.load(memory_order_relaxed);
    const uint64_t offset = b.entries_offset.load(memory_order_relaxed);
    const bool done = b.done.load(memory_order_relaxed) == 1;
    bool ok = b.checksum.load(memory_order_relaxed) == Checksum(version, count);
    const uint64_t mapped = region->size() - shmd::layout::kDataOffset;
    const bool fits = offset >= sizeof(Buffer) && offset < mapped && count <= (mapped - offset) / 8;
    if (fits) {  // a torn count must not send us past the mapping
      std::atomic<uint64_t>* table = Table(*region, offset);
      for (uint64_t i = 0; i < count && ok; ++i) {
        ok = table[i].load(memory_order_relaxed) == Entry(version, i);
      }
    }
    // (R2) Acquire fence, pairing with (W1): if any load above saw a store of a later
    // update, the sequence load below sees at least that update's odd value.
    std::atomic_thread_fence(memory_order_acquire);
    const uint64_t s2 = b.sequence.load(memory_order_relaxed);
    if (s1 != s2) {
      ++torn;  // the writer came through while we read: read again
      continue;
    }
    if (!fits) continue;  // a table past our mapping: the region grew; (G) catches up
    ++snapshots;
    if (!ok) ++inconsistent;  // a stable sequence yet mixed fields: a broken writer
    if (done) break;
  }
  std::printf(
      "reader %u: %llu snapshots, %llu torn reads retried, %llu inconsistent, "
      "remapped %llu time(s) (generation %llu -> %llu, file %llu -> %llu bytes)\n",
      o.index, (unsigned long long)snapshots, (unsigned long long)torn,
      (unsigned long long)inconsistent, (unsigned long long)remaps,
      (unsigned long long)first_generation, (unsigned long long)generation,
      (unsigned long long)first_size, (unsigned long long)region->size());
  return inconsistent == 0 ? 0 : 1;
}

int Run(const Options& o, const char* self) {
  shmd::Client client = Connect(o);
  const std::string id = "buffer-" + std::to_string(getpid());
  shmd::v1::Region spec;
  spec.set_size_bytes(kSmallRegion);
  Must(client.CreateRegion(id, spec), "creating the region");
  int rc = 0;
  {
    auto region = Must(client.Open<shmd::Segment>(id), "mapping the region");
    Write(*region, 0, kSmallTable, false);  // zero-filled by the daemon; now update 0
    std::vector<pid_t> readers;
    for (uint32_t r = 0; r < o.readers; ++r) {
      std::vector<std::string> args = {self, "--read", id, "--index", std::to_string(r)};
      if (!o.listen.empty()) args.insert(args.end(), {"--listen", o.listen});
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      pid_t pid = 0;
      if (int e = posix_spawn(&pid, self, nullptr, nullptr, argv.data(), environ); e != 0) {
        Fail(std::string("starting a reader: ") + std::strerror(e));
      }
      readers.push_back(pid);
    }
    const auto give_up = Clock::now() + kTimeout;
    while (BufferIn(*region).readers_ready.load(memory_order_relaxed) < o.readers) {
      if (Clock::now() > give_up) Fail("the readers did not map the region");
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }

    for (uint64_t v = 1; v <= o.updates; ++v) {
      if (v == o.updates / 2 + 1) {
        const shmd::v1::Region grown =
            Must(client.ResizeRegion(id, kLargeRegion), "growing the region");
        if (auto r = region->Remap(); !r.ok()) Fail("remapping: " + r.error().message());
        std::printf(
            "writer: after %llu updates, the daemon grew regions/%s to %llu bytes "
            "(generation %llu)\n",
            (unsigned long long)(v - 1), id.c_str(), (unsigned long long)grown.size_bytes(),
            (unsigned long long)grown.info().generation());
        std::fflush(stdout);
      }
      Write(*region, v, v > o.updates / 2 ? kLargeTable : kSmallTable, v == o.updates);
      // A real writer updates when it has news; pausing now and then leaves the readers
      // windows (a writer updating without pause could starve them: they only retry).
      if (v % 64 == 0) std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    for (pid_t pid : readers) {  // readers end within their own timeouts
      int status = 0;
      while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) rc = 1;
    }
  }  // unmapped and the lease given back: the region can go
  Must(client.DeleteRegion(id), "deleting the region");
  std::printf("shared_buffer: %llu updates, %u readers, %s; regions/%s deleted\n",
              (unsigned long long)o.updates, o.readers,
              rc == 0 ? "every snapshot consistent" : "FAILED", id.c_str());
  return rc;
}

uint64_t ParseNumber(const std::string& flag, const char* text, uint64_t min, uint64_t max) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(text, &end, 10);
  if (*text == '\0' || *end != '\0' || errno != 0 || v < min || v > max) {
    std::fprintf(stderr, "shared_buffer: %s wants a number from %llu to %llu, not '%s'\n",
                 flag.c_str(), (unsigned long long)min, (unsigned long long)max, text);
    std::exit(2);
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h" || i + 1 >= argc) {
      std::fprintf(a == "--help" || a == "-h" ? stdout : stderr,
                   "usage: shared_buffer [--listen ADDRESS] [--readers N] [--updates N]\n");
      return a == "--help" || a == "-h" ? 0 : 2;
    }
    const char* v = argv[++i];
    if (a == "--listen") {
      o.listen = v;
    } else if (a == "--readers") {
      o.readers = static_cast<uint32_t>(ParseNumber(a, v, 1, 16));
    } else if (a == "--updates") {
      o.updates = ParseNumber(a, v, 2, 100'000'000);
    } else if (a == "--read") {
      o.read = v;
    } else if (a == "--index") {
      o.index = static_cast<uint32_t>(ParseNumber(a, v, 0, 16));
    } else {
      std::fprintf(stderr, "shared_buffer: unknown option %s (see --help)\n", a.c_str());
      return 2;
    }
  }
  return o.read.empty() ? Run(o, argv[0]) : Read(o);
}
