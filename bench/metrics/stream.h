// The two processes of the throughput measurement: a producer and a consumer streaming
// 64-byte messages through one SPSC ring, each pinned to its own CPU, until told to stop.
//
// Each is this benchmark's own binary started again in a child mode (StreamChildMain) with
// posix_spawn, which runs no fork handlers: by then the parent has gRPC threads, and a fork
// of such a process is asking for trouble. The children use only the data plane: they open
// the ring by name in the daemon's directory, as a program in embedded mode would, and the
// daemon sees them in the ring's endpoint table (and in its metrics) all the same.
#ifndef SHMD_BENCH_METRICS_STREAM_H_
#define SHMD_BENCH_METRICS_STREAM_H_

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "shmd/dataplane/result.h"
#include "shmd/dataplane/segment.h"

namespace shmd::bench {

inline constexpr size_t kStreamMessageSize = 64;
// The first argument of a child: "--stream-child=producer" or "--stream-child=consumer".
inline constexpr char kStreamChildFlag[] = "--stream-child";

struct StreamSpec {
  std::string program;  // this benchmark's binary (/proc/self/exe, resolved)
  ShmDir dir;
  std::string ring;  // an SPSC ring that exists in `dir`
  int producer_cpu = 0;
  int consumer_cpu = 1;
};

// Whether argv asks for a child, and the child's whole life (its exit status).
bool IsStreamChild(int argc, char** argv);
int StreamChildMain(int argc, char** argv);

class StreamPair {
 public:
  StreamPair() = default;
  StreamPair(const StreamPair&) = delete;
  StreamPair& operator=(const StreamPair&) = delete;
  ~StreamPair();  // SIGKILLs and reaps whatever still runs

  // Starts the consumer, then the producer, each once it has opened its end of the ring;
  // the stream runs from the producer's start. Fails with the child's story if one does not
  // say it is ready within `timeout`.
  VoidResult Start(const StreamSpec& spec, std::chrono::milliseconds timeout);

  // Ok while both run; otherwise which one ended, and how.
  VoidResult CheckRunning();

  // Messages the consumer has read so far: the ring's own counter (the one the metrics
  // report), read from this process's mapping of the ring; nothing is added to the stream.
  uint64_t MessagesRead() const;

  // SIGTERM to the producer, which stops sending and detaches; the consumer drains the ring,
  // sees its producer gone and exits. Fails unless both exit with 0 within 10 s.
  VoidResult Stop();

 private:
  struct Child {
    explicit Child(const char* r) : role(r) {}
    const char* role;
    pid_t pid = -1;
    std::string ended;  // how it ended, once reaped
  };
  VoidResult Spawn(const StreamSpec& spec, Child* child, std::chrono::milliseconds timeout);
  bool Reaped(Child* child, bool wait);

  Child consumer_{"consumer"};
  Child producer_{"producer"};
  Segment ring_;
};

}  // namespace shmd::bench

#endif  // SHMD_BENCH_METRICS_STREAM_H_
