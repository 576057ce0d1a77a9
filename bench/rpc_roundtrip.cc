// rpc_roundtrip: request/response round trip of shmd (RpcClient/RpcServer, embedded mode)
// against a gRPC unary echo over a Unix socket, the obvious alternative, at 64 B and
// 64 KiB. Client and server are separate processes (this program re-executed), pinned to
// different CPUs when there are two. See --help.
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "bench/common/args.h"
#include "bench/common/json.h"
#include "bench/common/machine.h"
#include "rpc/echo.grpc.pb.h"
#include "shmd/client/rpc.h"

extern char** environ;

namespace shmd::bench {
namespace {

using namespace std::chrono_literals;

constexpr char kUsage[] =
    R"(usage: rpc_roundtrip [--json] [--quick] [--calls N] [--help]

Round trips (a request of S bytes, the same S bytes back) between a client process and a
server process pinned to different CPUs, S = 64 and 65536:
  shmd           RpcClient::Call / RpcServer::Serve, blocking waits (adaptive spin, then
                 futex)
  shmd-busy      the same with WaitOptions::busy_poll on both sides (each burns a core)
  grpc-uds       a gRPC unary call (sync server, one channel) over a Unix socket
Every call is timed after a warm-up: p50 and p99 in microseconds, and calls/s over the
timed calls. The ratios gRPC/shmd of p50 follow the table.
  --calls N   timed calls per row (default 20000; 2000 with --quick); 64 KiB rows do a
              quarter of that
  --json      one JSON array of {"mechanism","size","p50_us","p99_us","calls_per_s"} on
              stdout, everything else on stderr
)";

void UsageError(const std::string& message) {
  std::fprintf(stderr, "rpc_roundtrip: %s\n%s", message.c_str(), kUsage);
  std::exit(2);
}

std::atomic<bool> g_stop{false};
void OnTerm(int) { g_stop.store(true); }

// The server's CPU, chosen by the client before it pins itself (a child inherits the
// parent's affinity, so it could not see the other CPUs any more); -1: no pinning.
int g_server_cpu = -1;

void PinTo(int cpu) {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  (void)sched_setaffinity(0, sizeof set, &set);
}

// --- servers (child processes) -------------------------------------------------------

int ServeShmd(const std::string& path, const std::string& ns, bool busy, int cpu) {
  signal(SIGTERM, OnTerm);
  PinTo(cpu);
  RpcServerOptions options;
  options.wait.busy_poll = busy;
  auto server = RpcServer::Open(ShmDir{path, ns}, "bench", options);
  if (!server.ok()) {
    std::fprintf(stderr, "server: %s\n", server.error().message().c_str());
    return 1;
  }
  std::printf("ready\n");
  std::fflush(stdout);
  // Echo written straight into the client's reply ring.
  Status s = server->Serve(
      [](RpcRequest& r) {
        (void)r.ReplyInPlace(static_cast<uint32_t>(r.bytes().size()),
                             [&](std::span<std::byte> out) {
                               if (!out.empty())
                                 std::memcpy(out.data(), r.bytes().data(), out.size());
                               return static_cast<uint32_t>(out.size());
                             });
      },
      g_stop);
  return s == Status::kOk ? 0 : 1;
}

class EchoService final : public rpc::Echo::Service {
  grpc::Status Echo(grpc::ServerContext*, const rpc::EchoMessage* in,
                    rpc::EchoMessage* out) override {
    out->set_payload(in->payload());
    return grpc::Status::OK;
  }
};

int ServeGrpc(const std::string& socket, int cpu) {
  PinTo(cpu);
  EchoService service;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + socket, grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  builder.SetMaxReceiveMessageSize(1 << 20);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) return 1;
  std::printf("ready\n");
  std::fflush(stdout);
  server->Wait();  // until killed
  return 0;
}

// --- the client side ------------------------------------------------------------------

struct Row {
  std::string mechanism;
  uint32_t size = 0;
  double p50_us = 0, p99_us = 0, calls_per_s = 0;
};

Row Summarize(std::string mechanism, uint32_t size, std::vector<double> us, double seconds) {
  std::sort(us.begin(), us.end());
  Row r{std::move(mechanism), size};
  r.p50_us = us[us.size() / 2];
  r.p99_us = us[std::min(us.size() - 1, us.size() * 99 / 100)];
  r.calls_per_s = static_cast<double>(us.size()) / seconds;
  return r;
}

// Times `calls` calls of one() after a warm-up of a tenth as many (at least 100).
template <class One>
Row TimeCalls(std::string mechanism, uint32_t size, int calls, One&& one) {
  for (int i = 0; i < std::max(calls / 10, 100); ++i) one();
  std::vector<double> us;
  us.reserve(static_cast<size_t>(calls));
  const auto start = Clock::now();
  for (int i = 0; i < calls; ++i) {
    const auto t0 = Clock::now();
    one();
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return Summarize(std::move(mechanism), size, std::move(us), seconds);
}

// Starts this program in a server mode; waits for its "ready" on a pipe.
struct Child {
  pid_t pid = -1;
  ~Child() {
    if (pid > 0) {
      kill(pid, SIGTERM);
      int status;
      for (int i = 0; i < 200 && waitpid(pid, &status, WNOHANG) == 0; ++i) {
        std::this_thread::sleep_for(10ms);
      }
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
    }
  }
};

bool Spawn(Child* child, const char* self, std::vector<std::string> args) {
  int fds[2];
  if (pipe(fds) != 0) return false;
  args.insert(args.begin(), self);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  // posix_spawn, not fork: the parent holds a gRPC channel.
  int rc = posix_spawn(&child->pid, self, &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  if (rc != 0) {
    child->pid = -1;
    close(fds[0]);
    return false;
  }
  char buf[16] = {};
  ssize_t n = read(fds[0], buf, sizeof buf - 1);  // "ready\n" (or EOF if it failed)
  close(fds[0]);
  return n > 0 && std::strncmp(buf, "ready", 5) == 0;
}

Row MeasureShmd(const char* self, uint32_t size, int calls, bool busy) {
  const std::string mechanism = busy ? "shmd-busy" : "shmd";
  ShmDir dir{"/dev/shm", "rpcbench-" + std::to_string(getpid())};
  if (auto r = CreateRpcService(dir, "bench", {.max_request = 65536, .queue_depth = 64}); !r.ok()) {
    UsageError("create the service: " + r.error().message());
  }
  Row row;
  {
    Child child;
    if (!Spawn(&child, self,
               {"--serve-shmd", dir.path, dir.ns, busy ? "busy" : "block",
                std::to_string(g_server_cpu)})) {
      UsageError("the shmd server did not start");
    }
    RpcClientOptions options{.max_response = 65536, .max_in_flight = 4};
    options.wait.busy_poll = busy;
    auto client = RpcClient::Open(dir, "bench", options);
    if (!client.ok()) UsageError("open the client: " + client.error().message());
    std::vector<std::byte> request(size, std::byte{0x5a});
    RpcResponse response;
    auto one = [&] {
      Status s = client->Call(request, 5s, &response);
      if (s != Status::kOk || response.bytes().size() != size) {
        UsageError(std::string("shmd call failed: ") + StatusName(s));
      }
    };
    row = TimeCalls(mechanism, size, calls, one);
  }
  (void)RemoveRpcService(dir, "bench");
  return row;
}

Row MeasureGrpc(const char* self, uint32_t size, int calls) {
  const std::string socket = "/tmp/rpc_roundtrip-" + std::to_string(getpid()) + ".sock";
  unlink(socket.c_str());
  Row row;
  {
    Child child;
    if (!Spawn(&child, self, {"--serve-grpc", socket, std::to_string(g_server_cpu)})) {
      UsageError("the gRPC server did not start");
    }
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(1 << 20);
    auto channel =
        grpc::CreateCustomChannel("unix:" + socket, grpc::InsecureChannelCredentials(), args);
    auto stub = rpc::Echo::NewStub(channel);
    rpc::EchoMessage request, response;
    request.set_payload(std::string(size, 'Z'));
    auto one = [&] {
      grpc::ClientContext context;
      context.set_deadline(std::chrono::system_clock::now() + 5s);
      grpc::Status s = stub->Echo(&context, request, &response);
      if (!s.ok() || response.payload().size() != size) {
        UsageError("gRPC call failed: " + s.error_message());
      }
    };
    row = TimeCalls("grpc-uds", size, calls, one);
  }
  unlink(socket.c_str());
  return row;
}

int Run(int argc, char** argv) {
  bool json = false;
  int calls = 20000;
  bool quick = false;
  for (ArgScanner args(argc, argv, UsageError); args.Next();) {
    if (args.name() == "--json") {
      json = true;
    } else if (args.name() == "--quick") {
      quick = true;
    } else if (args.name() == "--calls") {
      calls = args.ParseInt(args.Value(), 100, 10000000);
    } else if (args.name() == "--help") {
      std::printf("%s", kUsage);
      return 0;
    } else {
      UsageError("unknown argument " + args.given());
    }
  }
  if (quick) calls = std::min(calls, 2000);
  FILE* info = json ? stderr : stdout;
  const MachineInfo m = DescribeMachine();
  std::fprintf(info, "machine: %s, %ld CPUs, %s, clocksource %s\n", m.cpu_model.c_str(),
               m.cpus_online, m.kernel.c_str(), m.clocksource.c_str());
  const std::vector<int> cpus = AllowedCpus();
  if (cpus.size() >= 2) {
    g_server_cpu = cpus[1];
    PinTo(cpus[0]);
    std::fprintf(info, "placement: client on CPU %d, server on CPU %d\n", cpus[0], cpus[1]);
  } else {
    std::fprintf(info, "placement: one CPU allowed: client and server share it\n");
  }
  const CpuTimes before = ReadCpuTimes();
  const auto wall_start = Clock::now();
  std::vector<Row> rows;
  for (uint32_t size : {64u, 65536u}) {
    const int n = size > 4096 ? std::max(calls / 4, 100) : calls;
    rows.push_back(MeasureShmd(argv[0], size, n, false));
    rows.push_back(MeasureShmd(argv[0], size, n, true));
    rows.push_back(MeasureGrpc(argv[0], size, n));
  }
  const CpuTimes after = ReadCpuTimes();
  const double wall = std::chrono::duration<double>(Clock::now() - wall_start).count();
  if (json) {
    std::printf("[");
    for (size_t i = 0; i < rows.size(); ++i) {
      const Row& r = rows[i];
      std::printf(
          "%s{\"mechanism\":%s,\"size\":%u,\"p50_us\":%.3f,\"p99_us\":%.3f,"
          "\"calls_per_s\":%.0f}",
          i ? "," : "", JsonString(r.mechanism).c_str(), r.size, r.p50_us, r.p99_us, r.calls_per_s);
    }
    std::printf("]\n");
  } else {
    std::printf("%-10s %8s %10s %10s %12s\n", "mechanism", "size", "p50 us", "p99 us", "calls/s");
    for (const Row& r : rows) {
      std::printf("%-10s %8u %10.2f %10.2f %12.0f\n", r.mechanism.c_str(), r.size, r.p50_us,
                  r.p99_us, r.calls_per_s);
    }
  }
  for (size_t i = 0; i + 2 < rows.size(); i += 3) {
    std::fprintf(info, "gRPC/shmd p50 at %u B: %.1fx (blocking), %.1fx (busy-poll)\n", rows[i].size,
                 rows[i + 2].p50_us / rows[i].p50_us, rows[i + 2].p50_us / rows[i + 1].p50_us);
  }
  // Other work on the machine shows in every figure, the tails most: say how much.
  const double busy = after.machine_busy_s - before.machine_busy_s;
  const double ours = (after.self_s - before.self_s) + (after.children_s - before.children_s);
  std::fprintf(info,
               "CPU: %.1f s busy on the machine over %.1f s, %.1f s of it this run's "
               "(the rest: other work sharing the machine)\n",
               busy, wall, ours);
  return 0;
}

}  // namespace
}  // namespace shmd::bench

int main(int argc, char** argv) {
  // The server modes (this program re-executed by the client).
  if (argc == 6 && std::strcmp(argv[1], "--serve-shmd") == 0) {
    return shmd::bench::ServeShmd(argv[2], argv[3], std::strcmp(argv[4], "busy") == 0,
                                  std::atoi(argv[5]));
  }
  if (argc == 4 && std::strcmp(argv[1], "--serve-grpc") == 0) {
    return shmd::bench::ServeGrpc(argv[2], std::atoi(argv[3]));
  }
  return shmd::bench::Run(argc, argv);
}
