// request_response: the article's request/response with timeouts, done with shmd: a
// server process and a client, through the daemon, with per-call deadlines and
// cancellation.
//
// The client asks the daemon for the service "squares" (an MPMC request ring; the client
// gets a reply ring of its own), starts the server as a second process, and calls it:
//   - two calls that succeed (the square of a number);
//   - a call whose deadline (50 ms) is shorter than the server takes for it (300 ms): it
//     returns DEADLINE_EXCEEDED, and its answer, when it comes, is dropped;
//   - a next call, which gets its own answer, not the late one;
//   - a slow call that is cancelled: its answer is dropped too;
//   - a last call after it.
// Then it stops the server and deletes the service.
//
//   request_response [--listen unix:///run/shmd/shmd.sock]
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "shmd/client/client.h"
#include "shmd/client/rpc.h"

extern char** environ;

namespace {

using namespace std::chrono_literals;
using shmd::Status;

enum Method : uint32_t { kSquare = 1, kSlowSquare = 2 };

template <class T>
T Must(shmd::Result<T> r, const char* what) {
  if (!r.ok()) {
    std::fprintf(stderr, "request_response: %s: %s\n", what, r.error().message().c_str());
    std::exit(1);
  }
  return std::move(r).value();
}

std::atomic<bool> g_stop{false};
void OnTerm(int) { g_stop.store(true); }  // lock-free: fine in a signal handler

// The server process: squares numbers, slowly when asked (kSlowSquare takes 300 ms).
int Serve(shmd::Client& client, const std::string& service) {
  signal(SIGTERM, OnTerm);
  auto server = Must(shmd::RpcServer::Open(client, service), "open the server");
  std::printf("server: serving %s\n", service.c_str());
  std::fflush(stdout);
  Status s = server.Serve(
      [](shmd::RpcRequest& r) {
        long long n = std::atoll(std::string(r.text()).c_str());
        if (r.method() == kSlowSquare) std::this_thread::sleep_for(300ms);
        if (r.method() != kSquare && r.method() != kSlowSquare) {
          (void)r.ReplyError(1, "unknown method");
          return;
        }
        std::string answer = std::to_string(n * n);
        (void)r.Reply({reinterpret_cast<const std::byte*>(answer.data()), answer.size()});
      },
      g_stop);
  std::printf("server: stopped after %llu requests (%llu past their deadline, skipped)\n",
              static_cast<unsigned long long>(server.served()),
              static_cast<unsigned long long>(server.expired_skipped()));
  return s == Status::kOk ? 0 : 1;
}

pid_t StartServer(const char* self, const std::string& service, const std::string& listen) {
  // A program of its own (posix_spawn: never fork a process that uses gRPC).
  std::vector<std::string> args = {self, "--serve", service};
  if (!listen.empty()) args.insert(args.end(), {"--listen", listen});
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t child = 0;
  return posix_spawn(&child, self, nullptr, nullptr, argv.data(), environ) == 0 ? child : -1;
}

std::span<const std::byte> Bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// The status as a gRPC user would name it.
const char* Named(Status s) {
  switch (s) {
    case Status::kTimeout:
      return "DEADLINE_EXCEEDED";
    case Status::kCancelled:
      return "CANCELLED";
    case Status::kPeerGone:
      return "UNAVAILABLE (server gone)";
    default:
      return shmd::StatusName(s);
  }
}

int RunClient(shmd::Client& client, const char* self, const std::string& listen) {
  const std::string service = "squares-" + std::to_string(getpid());
  Must(shmd::CreateRpcService(client, service, {.max_request = 256, .queue_depth = 16}),
       "create the service");
  const pid_t server = StartServer(self, service, listen);
  if (server < 0) {
    std::perror("posix_spawn");
    return 1;
  }
  int answered = 0, exceeded = 0, cancelled = 0, failures = 0;
  uint64_t discarded = 0;
  {
    auto calc = Must(shmd::RpcClient::Open(client, service), "open the client");
    shmd::RpcResponse r;
    // The server may not be up yet: until it is, calls fail at once with kPeerGone.
    Status s = Status::kPeerGone;
    for (int i = 0; i < 1000 && s == Status::kPeerGone; ++i) {
      s = calc.Call(Bytes("1"), 1s, &r, kSquare);
      if (s == Status::kPeerGone) std::this_thread::sleep_for(10ms);
    }
    auto call = [&](const char* what, const std::string& n, Method m, std::chrono::milliseconds t,
                    Status expected) {
      const auto start = std::chrono::steady_clock::now();
      Status got = calc.Call(Bytes(n), t, &r, m);
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count();
      if (got == Status::kOk) {
        std::printf("client: %s: %s^2 = %.*s (%.2f ms)\n", what, n.c_str(),
                    static_cast<int>(r.text().size()), r.text().data(), ms);
        if (r.text() == std::to_string(std::stoll(n) * std::stoll(n))) ++answered;
      } else {
        std::printf("client: %s: %s after %.0f ms\n", what, Named(got), ms);
        if (got == Status::kTimeout) ++exceeded;
      }
      if (got != expected) ++failures;
      std::fflush(stdout);
    };
    call("call 1", "7", kSquare, 1000ms, Status::kOk);
    call("call 2", "12", kSquare, 1000ms, Status::kOk);
    call("call 3 (slow, 50 ms deadline)", "3", kSlowSquare, 50ms, Status::kTimeout);
    // The server is still busy with call 3: this one waits for it, and its answer must be
    // 81, not call 3's late 9.
    call("call 4", "9", kSquare, 2000ms, Status::kOk);

    shmd::RpcCallId id = 0;
    if (calc.Start(Bytes("4"), shmd::Clock::now() + 5s, &id, kSlowSquare) == Status::kOk &&
        calc.Cancel(id) == Status::kOk) {
      std::printf("client: call 5 (slow) cancelled\n");
      ++cancelled;
    } else {
      ++failures;
    }
    call("call 6", "5", kSquare, 2000ms, Status::kOk);
    discarded = calc.discarded();
    std::printf("client: late or cancelled answers dropped: %llu\n",
                static_cast<unsigned long long>(discarded));
  }
  kill(server, SIGTERM);
  int status = 0;
  waitpid(server, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failures;
  Must(shmd::DeleteRpcService(client, service, /*force=*/true), "delete the service");
  // The client deleted its reply ring when it was destroyed; the service's ring is gone too.
  int left = 0;
  for (const auto& ring : Must(client.ListAllRings(), "list the rings")) {
    if (ring.name().find(service) != std::string::npos) ++left;
  }
  std::printf("daemon: %d rings of %s left\n", left, service.c_str());
  if (left != 0) ++failures;
  std::printf(
      "request_response: %d answered, %d deadline exceeded, %d cancelled, %llu late answers "
      "dropped, %d unexpected\n",
      answered, exceeded, cancelled, static_cast<unsigned long long>(discarded), failures);
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string listen, serve;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--listen" && i + 1 < argc) {
      listen = argv[++i];
    } else if (a == "--serve" && i + 1 < argc) {
      serve = argv[++i];
    } else {
      std::fprintf(stderr, "usage: %s [--listen unix:///run/shmd/shmd.sock]\n", argv[0]);
      return 2;
    }
  }
  shmd::ClientOptions options;
  options.target = listen;
  auto client = Must(shmd::Client::Connect(options), "connect to shmd");
  return serve.empty() ? RunClient(client, argv[0], listen) : Serve(client, serve);
}
