// The other processes of rpc_test: a server, and clients that call it under load.
//
//   rpc_peer server DIR NS SERVICE          serves HandleTestRequest (rpc_wire.h), prints
//       "ready" and, as each request starts, "handling SEQ"; runs until killed
//   rpc_peer client DIR NS SERVICE ID CALLS IN_FLIGHT MAX_SLEEP_US
//       makes CALLS calls (IN_FLIGHT at a time, random deadlines of 1 to 20 ms, one in
//       four asking the handler to sleep up to MAX_SLEEP_US), checks every answer against
//       its own request, and prints "result ok=A timeout=B wrong=C late=D other=E"
//   rpc_peer hang DIR NS SERVICE           makes one call, prints "called", sleeps until
//       killed (a client killed with its reply ring in place)
//
// Exit status 0 on success; otherwise it prints "error: ..." and exits 1.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <random>
#include <string>
#include <thread>

#include "patterns/rpc_wire.h"
#include "shmd/client/rpc.h"

namespace {

using namespace shmd;
using namespace shmd::testing;

int Fail(const std::string& what) {
  std::printf("error: %s\n", what.c_str());
  std::fflush(stdout);
  return 1;
}

int Server(const ShmDir& dir, const std::string& service) {
  auto server = RpcServer::Open(dir, service);
  if (!server.ok()) return Fail(server.error().message());
  std::printf("ready\n");
  std::fflush(stdout);
  RpcRequest request;
  for (;;) {
    Status s = server->Next(&request, std::chrono::seconds(1));
    if (s == Status::kTimeout) continue;
    if (s != Status::kOk) return Fail(std::string("next: ") + StatusName(s));
    RpcCheckRequest in{};
    if (request.bytes().size() >= sizeof in) {
      std::memcpy(&in, request.bytes().data(), sizeof in);
      if (in.sleep_us >= 1000000) {  // only the kill test's slow calls: keep the log small
        std::printf("handling %llu\n", static_cast<unsigned long long>(in.seq));
        std::fflush(stdout);
      }
    }
    HandleTestRequest(request);
  }
}

int ClientLoad(const ShmDir& dir, const std::string& service, uint64_t id, uint64_t calls,
               uint32_t in_flight, uint32_t max_sleep_us) {
  auto client = RpcClient::Open(dir, service, {.max_response = 4096, .max_in_flight = in_flight});
  if (!client.ok()) return Fail(client.error().message());
  std::mt19937_64 rng(id * 7919 + 1);
  struct Pending {
    RpcCallId call;
    uint64_t seq;
    uint64_t checksum;
    Clock::time_point deadline;
  };
  std::deque<Pending> pending;
  uint64_t started = 0, ok = 0, timeout = 0, wrong = 0, late = 0, other = 0;
  RpcResponse response;
  while (started < calls || !pending.empty()) {
    while (started < calls && pending.size() < in_flight) {
      const uint64_t seq = started;
      const uint32_t sleep_us =
          rng() % 4 == 0 ? static_cast<uint32_t>(rng() % (max_sleep_us + 1)) : 0;
      std::vector<std::byte> req =
          MakeCheckRequest(id, seq, sleep_us, static_cast<uint32_t>(rng() % 200));
      const auto deadline = Clock::now() + std::chrono::microseconds(1000 + rng() % 19000);
      RpcCallId call = 0;
      Status s = client->Start(req, deadline, &call, kMethodCheck);
      if (s == Status::kTimeout) {
        ++timeout;  // the request ring stayed full until the deadline
      } else if (s != Status::kOk) {
        return Fail(std::string("start: ") + StatusName(s));
      } else {
        pending.push_back({call, seq, RpcChecksum(req), deadline});
      }
      ++started;
    }
    // Await in a shuffled order: answers arrive for calls other than the awaited one.
    const size_t pick = rng() % pending.size();
    Pending p = pending[pick];
    pending.erase(pending.begin() + static_cast<long>(pick));
    Status s = client->Await(p.call, &response);
    if (s == Status::kOk) {
      RpcCheckAnswer a{};
      if (!response.ok() || response.bytes().size() != sizeof a) {
        ++wrong;
        continue;
      }
      std::memcpy(&a, response.bytes().data(), sizeof a);
      if (a.client != id || a.seq != p.seq || a.checksum != p.checksum ||
          response.call_id() != p.call) {
        ++wrong;
      } else {
        ++ok;
      }
    } else if (s == Status::kTimeout) {
      ++timeout;
      if (Clock::now() < p.deadline) ++late;  // a timeout before the deadline: a bug
    } else {
      ++other;
    }
  }
  std::printf("result ok=%llu timeout=%llu wrong=%llu late=%llu other=%llu discarded=%llu\n",
              static_cast<unsigned long long>(ok), static_cast<unsigned long long>(timeout),
              static_cast<unsigned long long>(wrong), static_cast<unsigned long long>(late),
              static_cast<unsigned long long>(other),
              static_cast<unsigned long long>(client->discarded()));
  std::fflush(stdout);
  return wrong == 0 && late == 0 && other == 0 && ok + timeout == calls ? 0 : 1;
}

int Hang(const ShmDir& dir, const std::string& service) {
  auto client = RpcClient::Open(dir, service);
  if (!client.ok()) return Fail(client.error().message());
  RpcResponse r;
  const std::string hi = "hi";
  Status s = client->Call({reinterpret_cast<const std::byte*>(hi.data()), hi.size()},
                          std::chrono::seconds(30), &r, kMethodEcho);
  if (s != Status::kOk) return Fail(std::string("call: ") + StatusName(s));
  std::printf("called\n");
  std::fflush(stdout);
  std::this_thread::sleep_for(std::chrono::seconds(60));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) return Fail("usage: rpc_peer server|client DIR NS SERVICE ...");
  const std::string mode = argv[1];
  const ShmDir dir{argv[2], argv[3]};
  const std::string service = argv[4];
  if (mode == "server") return Server(dir, service);
  if (mode == "hang") return Hang(dir, service);
  if (mode == "client" && argc == 9) {
    return ClientLoad(dir, service, std::strtoull(argv[5], nullptr, 10),
                      std::strtoull(argv[6], nullptr, 10),
                      static_cast<uint32_t>(std::strtoul(argv[7], nullptr, 10)),
                      static_cast<uint32_t>(std::strtoul(argv[8], nullptr, 10)));
  }
  return Fail("bad arguments");
}
