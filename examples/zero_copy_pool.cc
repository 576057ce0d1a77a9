// zero_copy_pool: large messages handed from one process to another without a single
// copy: the article's shared-memory block pool (shm_pool_alloc / shm_pool_free), done
// with a shmd channel.
//
// The producer asks the daemon for a channel (an SPSC ring plus a pool of `--depth`
// blocks of `--frame-bytes`), starts the consumer as a second process, and then, for
// each frame, loans a block (Loan), draws the frame straight into it, and Publishes it:
// only a 16-byte record naming the block travels through the ring. The consumer reads
// each frame where the producer drew it, keeps the last few (as a video decoder keeps
// reference frames: a pool lets it hold several, in any order) and lets each go by
// destroying it, which frees the block for the producer's next Loan. When every block is
// loaned or held, Loan waits: the pool is the back-pressure. At the end the daemon's view
// of the pool shows every block back, and the channel is deleted.
//
//   zero_copy_pool [--listen unix:///run/shmd/shmd.sock] [--frames N] [--frame-bytes B]
//                  [--depth D]
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include "shmd/client/channel.h"
#include "shmd/client/client.h"

extern char** environ;

namespace {

using namespace std::chrono_literals;

struct Options {
  std::string listen;  // "" = shmd::DefaultTarget() ($SHMD_LISTEN)
  uint64_t frames = 2000;
  uint32_t frame_bytes = 1 << 20;
  uint32_t depth = 8;
  std::string consume;  // set in the consumer process: the channel's name
};

template <class T>
T Must(shmd::Result<T> r, const char* what) {
  if (!r.ok()) {
    std::fprintf(stderr, "zero_copy_pool: %s: %s\n", what, r.error().message().c_str());
    std::exit(1);
  }
  return std::move(r).value();
}

// Frame n's 8-byte words: its number in the first, then a value derived from both.
uint64_t Word(uint64_t frame, size_t i) {
  return i == 0 ? frame : frame * 0x9E3779B97F4A7C15ULL ^ i;
}

int Consume(const Options& o, shmd::Client& client) {
  auto rx = Must(shmd::ChannelReceiver::Open(client, o.consume), "open the receiving end");
  std::deque<shmd::ChannelMessage> kept;  // the last few frames, still in their blocks
  uint64_t bytes = 0;
  for (uint64_t n = 0; n < o.frames; ++n) {
    shmd::ChannelMessage frame;
    const shmd::Status s = rx.Receive(&frame, 10s);
    if (s != shmd::Status::kOk) {
      std::fprintf(stderr, "consumer: frame %llu: %s\n", static_cast<unsigned long long>(n),
                   shmd::StatusName(s));
      return 1;
    }
    // Read in place: every word, as a decoder would.
    const auto* words = reinterpret_cast<const uint64_t*>(frame.bytes().data());
    for (size_t i = 0; i < frame.size() / 8; ++i) {
      if (words[i] != Word(n, i)) {
        std::fprintf(stderr, "consumer: frame %llu word %zu is wrong\n",
                     static_cast<unsigned long long>(n), i);
        return 1;
      }
    }
    bytes += frame.size();
    kept.push_back(std::move(frame));
    if (kept.size() > o.depth / 2) kept.pop_front();  // the oldest block goes back
  }
  std::printf("consumer: read %llu frames (%.1f MB) in place, 0 bytes copied\n",
              static_cast<unsigned long long>(o.frames), bytes / 1e6);
  return 0;
}

pid_t StartConsumer(const Options& o, const char* self, const std::string& name) {
  // A program of its own (posix_spawn: never fork a process that uses gRPC).
  std::vector<std::string> args = {self,
                                   "--consume",
                                   name,
                                   "--frames",
                                   std::to_string(o.frames),
                                   "--depth",
                                   std::to_string(o.depth)};
  if (!o.listen.empty()) args.insert(args.end(), {"--listen", o.listen});
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t child = 0;
  return posix_spawn(&child, self, nullptr, nullptr, argv.data(), environ) == 0 ? child : -1;
}

int Produce(const Options& o, const char* self, shmd::Client& client) {
  const std::string name = "frames-" + std::to_string(getpid());
  Must(shmd::CreateChannel(client, name, {.max_message = o.frame_bytes, .depth = o.depth}),
       "create the channel");
  std::printf("producer: channel %s: pools/%s holds %u blocks of %u bytes\n", name.c_str(),
              shmd::ChannelPoolName(name).c_str(), o.depth, o.frame_bytes);
  std::fflush(stdout);
  const pid_t child = StartConsumer(o, self, name);
  if (child < 0) {
    std::perror("posix_spawn");
    return 1;
  }
  int rc = 0;
  {
    auto tx = Must(shmd::ChannelSender::Open(client, name), "open the sending end");
    const auto start = std::chrono::steady_clock::now();
    for (uint64_t n = 0; n < o.frames && rc == 0; ++n) {
      shmd::ChannelLoan loan;
      shmd::Status s = tx.Loan(o.frame_bytes, &loan, 10s);  // waits while all blocks are out
      if (s == shmd::Status::kOk) {
        auto* words = reinterpret_cast<uint64_t*>(loan.bytes().data());
        for (size_t i = 0; i < o.frame_bytes / 8; ++i) words[i] = Word(n, i);  // draw in place
        s = tx.Publish(std::move(loan), 10s);
      }
      if (s != shmd::Status::kOk) {
        std::fprintf(stderr, "producer: frame %llu: %s\n", static_cast<unsigned long long>(n),
                     shmd::StatusName(s));
        rc = 1;
      }
    }
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf(
        "producer: published %llu frames of %u bytes in %.2f s (%.0f MB/s), 0 bytes copied\n",
        static_cast<unsigned long long>(o.frames), o.frame_bytes, secs,
        o.frames * double(o.frame_bytes) / secs / 1e6);
    int status = 0;
    waitpid(child, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) rc = 1;
  }
  shmd::v1::Pool pool = Must(client.GetPool(shmd::ChannelPoolName(name)), "read the pool back");
  std::printf("daemon: pools/%s has %llu blocks in use; Loan found it empty %llu times\n",
              shmd::ChannelPoolName(name).c_str(),
              static_cast<unsigned long long>(pool.usage().blocks_in_use()),
              static_cast<unsigned long long>(pool.usage().alloc_failures()));
  Must(shmd::DeleteChannel(client, name), "delete the channel");
  std::printf("producer: deleted channel %s\n", name.c_str());
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::printf("usage: %s [--listen ADDRESS] [--frames N] [--frame-bytes B] [--depth D]\n",
                  argv[0]);
      return 0;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "zero_copy_pool: %s needs a value (see --help)\n", a.c_str());
      return 2;
    }
    const char* v = argv[++i];
    if (a == "--listen") {
      o.listen = v;
    } else if (a == "--frames") {
      o.frames = std::strtoull(v, nullptr, 10);
    } else if (a == "--frame-bytes") {
      o.frame_bytes = static_cast<uint32_t>(std::strtoul(v, nullptr, 10));
    } else if (a == "--depth") {
      o.depth = static_cast<uint32_t>(std::strtoul(v, nullptr, 10));
    } else if (a == "--consume") {
      o.consume = v;
    } else {
      std::fprintf(stderr, "zero_copy_pool: unknown argument %s (see --help)\n", a.c_str());
      return 2;
    }
  }
  if (o.frame_bytes < 64 || o.frame_bytes % 8 != 0 || o.depth < 2) {
    std::fprintf(stderr,
                 "zero_copy_pool: --frame-bytes must be a multiple of 8 of at least 64, "
                 "--depth at least 2\n");
    return 2;
  }
  shmd::ClientOptions options;
  options.target = o.listen;
  shmd::Client client = Must(shmd::Client::Connect(options), "connect to the daemon");
  return o.consume.empty() ? Produce(o, argv[0], client) : Consume(o, client);
}
