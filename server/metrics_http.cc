#include "server/metrics_http.h"

#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <prometheus/text_serializer.h>

namespace shmd::server {
namespace {

constexpr int kIoTimeoutMs = 5000;  // a scraper that stalls is dropped, not waited for
constexpr size_t kMaxRequest = 16 * 1024;

// Writes all of `data`, waiting at most kIoTimeoutMs for room each time.
bool WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n > 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd, POLLOUT, 0};
      if (poll(&p, 1, kIoTimeoutMs) <= 0) return false;
      continue;
    }
    return false;
  }
  return true;
}

std::string Response(int code, const char* reason, const char* type, const std::string& body,
                     bool head) {
  std::string r = "HTTP/1.1 " + std::to_string(code) + " " + reason + "\r\n" +
                  "Content-Type: " + type + "\r\n" +
                  "Content-Length: " + std::to_string(body.size()) + "\r\n" +
                  "Connection: close\r\n\r\n";
  if (!head) r += body;
  return r;
}

}  // namespace

Result<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const std::string& address, std::vector<std::shared_ptr<prometheus::Collectable>> sources) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon + 1 == address.size()) {
    return Error(ErrorCode::kInvalidArgument,
                 "metrics address '" + address + "' is not host:port (e.g. 127.0.0.1:9478)");
  }
  std::string host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const std::string port = address.substr(colon + 1);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &found);
      rc != 0) {
    return Error(ErrorCode::kInvalidArgument,
                 "metrics address '" + address + "': " + gai_strerror(rc));
  }
  int fd = socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fd < 0 || bind(fd, found->ai_addr, found->ai_addrlen) != 0 || listen(fd, 16) != 0) {
    const int err = errno;
    freeaddrinfo(found);
    if (fd >= 0) close(fd);
    return Error(ErrorCode::kSystem, "cannot serve metrics on " + address + ": " +
                                         ErrnoText(err) +
                                         "; is the port in use? Pick another, or 'none'");
  }
  freeaddrinfo(found);
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  const int bound_port = ntohs(bound.ss_family == AF_INET6
                                   ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                   : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  int stop_fd = eventfd(0, EFD_CLOEXEC);
  if (stop_fd < 0) {
    close(fd);
    return Error(ErrorCode::kSystem, "eventfd: " + ErrnoText(errno));
  }
  std::unique_ptr<MetricsHttpServer> server(
      new MetricsHttpServer(fd, stop_fd, bound_port, std::move(sources)));
  server->thread_ = std::thread([raw = server.get()] { raw->Run(); });
  return server;
}

MetricsHttpServer::MetricsHttpServer(int listen_fd, int stop_fd, int port,
                                     std::vector<std::shared_ptr<prometheus::Collectable>> sources)
    : listen_fd_(listen_fd), stop_fd_(stop_fd), port_(port), sources_(std::move(sources)) {}

MetricsHttpServer::~MetricsHttpServer() {
  uint64_t one = 1;
  (void)!write(stop_fd_, &one, sizeof one);
  if (thread_.joinable()) thread_.join();
  close(listen_fd_);
  close(stop_fd_);
}

std::string MetricsHttpServer::Render() const {
  std::vector<prometheus::MetricFamily> families;
  for (const auto& source : sources_) {
    std::vector<prometheus::MetricFamily> part = source->Collect();
    families.insert(families.end(), std::make_move_iterator(part.begin()),
                    std::make_move_iterator(part.end()));
  }
  return prometheus::TextSerializer().Serialize(families);
}

void MetricsHttpServer::Run() {
  pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
  for (;;) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents) return;
    if (!(fds[0].revents & POLLIN)) continue;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) continue;
    Serve(fd);
    close(fd);
  }
}

void MetricsHttpServer::Serve(int fd) const {
  // Read the request head (up to the blank line); the body, if any, is ignored.
  std::string request;
  char buf[2048];
  while (request.find("\r\n\r\n") == std::string::npos && request.size() < kMaxRequest) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, kIoTimeoutMs) <= 0) return;
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return;
    request.append(buf, static_cast<size_t>(n));
  }
  const size_t line_end = request.find("\r\n");
  const std::string line = request.substr(0, line_end);
  const size_t sp1 = line.find(' ');
  const size_t sp2 = line.find(' ', sp1 + 1);
  if (sp1 == std::string::npos || sp2 == std::string::npos) {
    WriteAll(fd, Response(400, "Bad Request", "text/plain", "bad request line\n", false));
    return;
  }
  const std::string method = line.substr(0, sp1);
  std::string path = line.substr(sp1 + 1, sp2 - sp1 - 1);
  path = path.substr(0, path.find('?'));
  const bool head = method == "HEAD";
  if (method != "GET" && !head) {
    WriteAll(fd, Response(405, "Method Not Allowed", "text/plain", "GET /metrics\n", false));
  } else if (path == "/metrics") {
    WriteAll(fd, Response(200, "OK", kMetricsContentType, Render(), head));
  } else if (path == "/") {
    WriteAll(fd, Response(200, "OK", "text/plain; charset=utf-8",
                          "shmd: Prometheus metrics are at /metrics\n", head));
  } else {
    WriteAll(fd, Response(404, "Not Found", "text/plain", "not found; try /metrics\n", head));
  }
}

}  // namespace shmd::server
