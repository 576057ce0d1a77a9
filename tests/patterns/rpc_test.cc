// Request/response (api/include/shmd/client/rpc.h): single calls, handler errors,
// deadlines and late answers, cancellation, bad input, no server; then real processes:
// four clients under load with random deadlines, and a server killed with calls pending.
#include "shmd/client/rpc.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "common/peer_process.h"
#include "common/test_dir.h"
#include "patterns/rpc_wire.h"

namespace shmd {
namespace {

using namespace std::chrono_literals;
using testing::MakeCheckRequest;
using testing::PeerProcess;
using testing::RpcCheckAnswer;
using testing::TestDir;

std::span<const std::byte> Bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// A service with a server thread in this process running HandleTestRequest.
class RpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(CreateRpcService(dir_, "calc", {.max_request = 1024, .queue_depth = 16}).ok());
  }
  void StartServer() {
    auto server = RpcServer::Open(dir_, "calc");
    ASSERT_TRUE(server.ok()) << server.error().message();
    server_.emplace(std::move(server).value());
    thread_ =
        std::thread([this] { serve_status_ = server_->Serve(testing::HandleTestRequest, stop_); });
  }
  void StopServer() {
    stop_ = true;
    if (!thread_.joinable()) return;
    thread_.join();
    EXPECT_EQ(serve_status_, Status::kOk) << StatusName(serve_status_);
  }
  void TearDown() override { StopServer(); }
  RpcClient NewClient(RpcClientOptions options = {}) {
    auto c = RpcClient::Open(dir_, "calc", options);
    EXPECT_TRUE(c.ok()) << c.error().message();
    return std::move(c).value();
  }
  // A request the handler answers after sleeping `sleep`, echoing it back.
  static std::vector<std::byte> Slow(uint64_t seq, Nanos sleep) {
    return MakeCheckRequest(
        0, seq,
        static_cast<uint32_t>(std::chrono::duration_cast<std::chrono::microseconds>(sleep).count()),
        0);
  }

  TestDir dir_;
  std::optional<RpcServer> server_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  Status serve_status_ = Status::kOk;
};

TEST_F(RpcTest, OneCall) {
  StartServer();
  RpcClient client = NewClient();
  RpcResponse r;
  ASSERT_EQ(client.Call(Bytes("hello"), 5s, &r, testing::kMethodEcho), Status::kOk);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.text(), "hello");
  EXPECT_EQ(client.in_flight(), 0u);
  // An empty request and an empty answer are fine too.
  ASSERT_EQ(client.Call({}, 5s, &r, testing::kMethodEcho), Status::kOk);
  EXPECT_EQ(r.bytes().size(), 0u);
}

TEST_F(RpcTest, HandlerErrorsReachTheCaller) {
  StartServer();
  RpcClient client = NewClient();
  RpcResponse r;
  ASSERT_EQ(client.Call(Bytes("x"), 5s, &r, testing::kMethodError), Status::kOk);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.code(), 7u);
  EXPECT_EQ(r.text(), "boom");
  ASSERT_EQ(client.Call(Bytes("x"), 5s, &r, 99), Status::kOk);
  EXPECT_EQ(r.code(), 5u);
}

TEST_F(RpcTest, DeadlineExceededThenTheLateAnswerIsDroppedNotDeliveredToTheNextCall) {
  StartServer();
  RpcClient client = NewClient();
  RpcResponse r;
  const auto start = Clock::now();
  ASSERT_EQ(client.Call(Slow(1, 200ms), 20ms, &r, testing::kMethodEcho), Status::kTimeout);
  EXPECT_GE(Clock::now() - start, 20ms);  // never before the deadline
  EXPECT_EQ(client.in_flight(), 0u);
  // The server answers the first call late (after its sleep), then this one: the late
  // answer arrives first, and must be dropped.
  ASSERT_EQ(client.Call(Bytes("second"), 10s, &r, testing::kMethodEcho), Status::kOk);
  EXPECT_EQ(r.text(), "second");
  EXPECT_EQ(client.discarded(), 1u);
}

TEST_F(RpcTest, CancelledCallsAnswerIsDropped) {
  StartServer();
  RpcClient client = NewClient();
  RpcCallId slow = 0;
  auto req = Slow(1, 100ms);
  ASSERT_EQ(client.Start(req, Clock::now() + 10s, &slow, testing::kMethodEcho), Status::kOk);
  ASSERT_EQ(client.Cancel(slow), Status::kOk);
  EXPECT_EQ(client.Cancel(slow), Status::kInvalidArgument);  // no longer pending
  RpcResponse r;
  EXPECT_EQ(client.Await(slow, &r), Status::kInvalidArgument);
  ASSERT_EQ(client.Call(Bytes("mine"), 10s, &r, testing::kMethodEcho), Status::kOk);
  EXPECT_EQ(r.text(), "mine");
  EXPECT_EQ(client.discarded(), 1u);
}

TEST_F(RpcTest, ManyCallsInFlightEachGetsItsOwnAnswer) {
  StartServer();
  RpcClient client = NewClient({.max_in_flight = 8});
  std::vector<RpcCallId> ids;
  for (uint64_t i = 0; i < 8; ++i) {
    RpcCallId id = 0;
    ASSERT_EQ(
        client.Start(MakeCheckRequest(3, i, 0, 10), Clock::now() + 10s, &id, testing::kMethodCheck),
        Status::kOk);
    ids.push_back(id);
  }
  RpcCallId extra = 0;
  EXPECT_EQ(client.Start(Bytes("x"), Clock::now() + 10s, &extra), Status::kFull);
  RpcResponse r;
  for (size_t k = ids.size(); k-- > 0;) {  // the last first: the others wait in the table
    Status s = Status::kEmpty;
    if (k % 2 == 0) {
      ASSERT_EQ(s = client.Await(ids[k], &r), Status::kOk);
    } else {
      const auto until = Clock::now() + 10s;
      while ((s = client.Poll(ids[k], &r)) == Status::kEmpty && Clock::now() < until) {
        std::this_thread::sleep_for(100us);
      }
      ASSERT_EQ(s, Status::kOk);
    }
    RpcCheckAnswer a{};
    ASSERT_EQ(r.bytes().size(), sizeof a);
    std::memcpy(&a, r.bytes().data(), sizeof a);
    EXPECT_EQ(a.seq, k);
    EXPECT_EQ(r.call_id(), ids[k]);
  }
  EXPECT_EQ(client.discarded(), 0u);
}

TEST_F(RpcTest, TooLargeAndBadSpecsAreClearErrors) {
  StartServer();
  RpcClient client = NewClient({.max_response = 64});
  EXPECT_EQ(client.max_request(), 1024u);
  std::vector<std::byte> big(1025);
  RpcResponse r;
  EXPECT_EQ(client.Call(big, 1s, &r), Status::kTooLarge);
  // An answer over the client's max_response: the server's Reply says kTooLarge, and
  // the handler (Serve) falls back to an error the client can read.
  std::vector<std::byte> echo(100);
  ASSERT_EQ(client.Call(echo, 5s, &r, testing::kMethodEcho), Status::kOk);
  EXPECT_EQ(r.code(), kRpcNoReply);

  auto bad = [&](RpcSpec spec, const char* says) {
    VoidResult v = CreateRpcService(dir_, "other", spec);
    ASSERT_FALSE(v.ok());
    EXPECT_EQ(v.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(v.error().message().find(says), std::string::npos) << v.error().message();
  };
  bad({.max_request = 0}, "max_request");
  bad({.queue_depth = 3}, "queue_depth");
  EXPECT_FALSE(RpcClient::Open(dir_, "calc", {.max_in_flight = 0}).ok());
  EXPECT_FALSE(RpcReplyRingSpec({.max_response = 16u << 20, .max_in_flight = 4096}).ok());
  auto missing = RpcClient::Open(dir_, "missing");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
  RpcCallId id;
  EXPECT_EQ(client.Start(Bytes("x"), Clock::now() + 1s, nullptr), Status::kInvalidArgument);
  EXPECT_EQ(client.Await(12345, &r), Status::kInvalidArgument);
  (void)id;
}

TEST_F(RpcTest, NoServerFailsAtOnce) {
  RpcClient client = NewClient();
  RpcResponse r;
  const auto start = Clock::now();
  EXPECT_EQ(client.Call(Bytes("anyone?"), 30s, &r), Status::kPeerGone);
  EXPECT_LT(Clock::now() - start, 30s);
  // A server that comes later is found by the next call.
  StartServer();
  ASSERT_EQ(client.Call(Bytes("now"), 10s, &r, testing::kMethodEcho), Status::kOk);
  EXPECT_EQ(r.text(), "now");
}

TEST_F(RpcTest, DeadlinesInThePastOrFarAway) {
  StartServer();
  RpcClient client = NewClient();
  RpcCallId id = 0;
  EXPECT_EQ(client.Start(Bytes("late"), Clock::now() - 1ms, &id), Status::kTimeout);
  EXPECT_EQ(client.in_flight(), 0u);
  ASSERT_EQ(client.Start(Bytes("whenever"), Clock::time_point::max(), &id, testing::kMethodEcho),
            Status::kOk);
  RpcResponse r;
  ASSERT_EQ(client.Await(id, &r), Status::kOk);
  EXPECT_EQ(r.text(), "whenever");
  ASSERT_EQ(client.Call(Bytes("forever"), Nanos::max(), &r, testing::kMethodEcho), Status::kOk);
  EXPECT_EQ(r.text(), "forever");
}

TEST_F(RpcTest, OneServerPerService) {
  StartServer();
  auto second = RpcServer::Open(dir_, "calc");
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code(), ErrorCode::kBusy);
}

TEST_F(RpcTest, ExpiredRequestsAreSkippedWithoutRunningTheHandler) {
  auto server = RpcServer::Open(dir_, "calc");
  ASSERT_TRUE(server.ok());
  RpcClient client = NewClient();
  RpcCallId id = 0;
  ASSERT_EQ(client.Start(Bytes("stale"), Clock::now() + 1ms, &id), Status::kOk);
  std::this_thread::sleep_for(5ms);
  RpcRequest req;
  EXPECT_EQ(server->Next(&req, 50ms), Status::kTimeout);
  EXPECT_EQ(server->expired_skipped(), 1u);
  EXPECT_EQ(server->served(), 0u);
  RpcResponse r;
  EXPECT_EQ(client.Await(id, &r), Status::kTimeout);
}

TEST_F(RpcTest, ServerDropsTheReplyRingOfAClientThatLeft) {
  auto server = RpcServer::Open(dir_, "calc");
  ASSERT_TRUE(server.ok());
  RpcRequest req;
  {
    RpcClient client = NewClient();
    RpcCallId id = 0;
    ASSERT_EQ(client.Start(Bytes("a"), Clock::now() + 10s, &id), Status::kOk);
    ASSERT_EQ(server->Next(&req, 5s), Status::kOk);
    ASSERT_EQ(req.Reply(Bytes("A")), Status::kOk);
    EXPECT_EQ(server->cached_clients(), 1u);
    ASSERT_EQ(client.Start(Bytes("b"), Clock::now() + 10s, &id), Status::kOk);
    ASSERT_EQ(server->Next(&req, 5s), Status::kOk);
  }  // the client leaves with a call pending: its reply ring is gone
  EXPECT_NE(req.Reply(Bytes("B")), Status::kOk);
  EXPECT_EQ(req.Reply(Bytes("B")), Status::kInvalidArgument);  // answered (dropped) once
  EXPECT_EQ(server->replies_dropped(), 1u);
  EXPECT_EQ(dir_.CountFiles(), 1);  // only the service's ring
}

// --- real processes ---------------------------------------------------------------------

class RpcProcessTest : public ::testing::Test {
 protected:
  std::vector<std::string> Peer(std::vector<std::string> args) {
    args.insert(args.begin(), {SHMD_PATTERN_PEER});
    return args;
  }
  std::vector<std::string> Server() {
    return Peer({"server", dir_.dir().path, dir_.dir().ns, "calc"});
  }
  TestDir dir_;
};

TEST_F(RpcProcessTest, UnderLoadNoAnswerEverReachesTheWrongCall) {
  ASSERT_TRUE(CreateRpcService(dir_, "calc", {.max_request = 1024, .queue_depth = 64}).ok());
  PeerProcess server(Server());
  ASSERT_EQ(server.WaitForLine("ready", 10s), "ready") << server.Output();
  const uint64_t calls = testing::Scaled(3000);
  std::vector<std::unique_ptr<PeerProcess>> clients;
  for (int i = 1; i <= 4; ++i) {
    clients.push_back(std::make_unique<PeerProcess>(
        Peer({"client", dir_.dir().path, dir_.dir().ns, "calc", std::to_string(i),
              std::to_string(calls), "6", "3000"})));
  }
  uint64_t ok_total = 0, timeout_total = 0;
  for (auto& c : clients) {
    std::string line = c->WaitForLine("result", 120s);
    ASSERT_FALSE(line.empty()) << c->Output();
    unsigned long long ok = 0, timeout = 0, wrong = 0, late = 0, other = 0, discarded = 0;
    ASSERT_EQ(std::sscanf(line.c_str(),
                          "result ok=%llu timeout=%llu wrong=%llu late=%llu other=%llu "
                          "discarded=%llu",
                          &ok, &timeout, &wrong, &late, &other, &discarded),
              6)
        << line;
    EXPECT_EQ(wrong, 0u) << line;
    EXPECT_EQ(late, 0u) << line;
    EXPECT_EQ(other, 0u) << line;
    EXPECT_EQ(ok + timeout, calls) << line;
    EXPECT_TRUE(testing::ExitedWith(c->Wait(30s), 0)) << c->Output();
    ok_total += ok;
    timeout_total += timeout;
  }
  // Nothing about how many succeed is asserted (the machine is shared), only that the
  // run did something: most calls ask for no sleep and have milliseconds to spare.
  EXPECT_GT(ok_total, 0u);
  EXPECT_EQ(dir_.CountFiles(), 1);  // each client deleted its reply ring as it left
  std::printf("load: %llu ok, %llu timed out\n", static_cast<unsigned long long>(ok_total),
              static_cast<unsigned long long>(timeout_total));
}

TEST_F(RpcProcessTest, ServerDeletesTheReplyRingOfAKilledClient) {
  ASSERT_TRUE(CreateRpcService(dir_, "calc").ok());
  auto server = RpcServer::Open(dir_, "calc");
  ASSERT_TRUE(server.ok());
  PeerProcess client(Peer({"hang", dir_.dir().path, dir_.dir().ns, "calc"}));
  RpcRequest req;
  ASSERT_EQ(server->Next(&req, 10s), Status::kOk);
  testing::HandleTestRequest(req);
  ASSERT_EQ(client.WaitForLine("called", 10s), "called") << client.Output();
  EXPECT_EQ(dir_.CountFiles(), 2);  // the service's ring and the client's reply ring
  client.Kill(SIGKILL);
  client.Wait(5s);
  // The server notices at its next once-a-second check.
  const auto until = Clock::now() + 10s;
  while (server->cached_clients() != 0 && Clock::now() < until) {
    EXPECT_EQ(server->Next(&req, 100ms), Status::kTimeout);
  }
  EXPECT_EQ(server->cached_clients(), 0u);
  EXPECT_EQ(dir_.CountFiles(), 1);
}

TEST_F(RpcProcessTest, KilledServerFailsEveryPendingCallBeforeItsDeadline) {
  ASSERT_TRUE(CreateRpcService(dir_, "calc", {.max_request = 1024, .queue_depth = 16}).ok());
  PeerProcess server(Server());
  ASSERT_EQ(server.WaitForLine("ready", 10s), "ready") << server.Output();
  auto client = RpcClient::Open(dir_, "calc");
  ASSERT_TRUE(client.ok());
  // One answered call first, so the server holds this client's reply ring too.
  RpcResponse r;
  ASSERT_EQ(client->Call(Bytes("warm"), 10s, &r, testing::kMethodEcho), Status::kOk);
  // Six slow calls: the server takes the first and sleeps in it; the rest stay queued.
  const auto deadline = Clock::now() + 10s;
  std::vector<RpcCallId> ids;
  for (uint64_t i = 0; i < 6; ++i) {
    RpcCallId id = 0;
    ASSERT_EQ(
        client->Start(MakeCheckRequest(0, i, 60'000'000, 0), deadline, &id, testing::kMethodCheck),
        Status::kOk);
    ids.push_back(id);
  }
  ASSERT_EQ(server.WaitForLine("handling", 10s), "handling 0") << server.Output();
  server.Kill(SIGKILL);
  for (RpcCallId id : ids) {
    EXPECT_EQ(client->Await(id, &r), Status::kPeerGone);
    EXPECT_LT(Clock::now(), deadline);
  }
  EXPECT_EQ(client->in_flight(), 0u);
  // A new server answers the next call (the dead one's queued requests are skipped as
  // the calls are no longer pending: their answers are dropped).
  PeerProcess server2(Server());
  ASSERT_EQ(server2.WaitForLine("ready", 10s), "ready") << server2.Output();
  ASSERT_EQ(client->Call(Bytes("again"), 20s, &r, testing::kMethodEcho), Status::kOk);
  EXPECT_EQ(r.text(), "again");
}

}  // namespace
}  // namespace shmd
