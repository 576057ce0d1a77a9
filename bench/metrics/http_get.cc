#include "bench/metrics/http_get.h"

#include <netdb.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace shmd::bench {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr size_t kReadChunk = 64 << 10;

// Closes the socket however Get returns.
class Socket {
 public:
  explicit Socket(int fd) : fd_(fd) {}
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket() {
    if (fd_ >= 0) close(fd_);
  }
  int fd() const { return fd_; }

 private:
  int fd_;
};

// Waits for `events` on `fd` until `deadline`; false on timeout or poll failure.
bool WaitFor(int fd, short events, SteadyClock::time_point deadline) {
  for (;;) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - SteadyClock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, events, 0};
    const int n = poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 60'000)));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return false;
  }
}

bool StartsWithNoCase(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() &&
         strncasecmp(text.data(), prefix.data(), prefix.size()) == 0;
}

}  // namespace

Result<HttpGetter> HttpGetter::ForUrl(const std::string& url) {
  const std::string scheme = "http://";
  if (url.rfind(scheme, 0) != 0) {
    return Error(ErrorCode::kInvalidArgument, "'" + url + "' is not an http:// URL");
  }
  const size_t slash = url.find('/', scheme.size());
  std::string authority = url.substr(scheme.size(), slash - scheme.size());
  const std::string path = slash == std::string::npos ? "/" : url.substr(slash);
  std::string host = authority, port = "80";
  if (const size_t colon = authority.rfind(':');
      colon != std::string::npos && authority.find(']', colon) == std::string::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return Error(ErrorCode::kInvalidArgument,
                 "'" + url + "': " + gai_strerror(rc) + " (a numeric host and port are needed)");
  }
  HttpGetter getter;
  getter.url_ = url;
  std::memcpy(&getter.address_, found->ai_addr, found->ai_addrlen);
  getter.address_size_ = found->ai_addrlen;
  freeaddrinfo(found);
  getter.request_ = "GET " + path + " HTTP/1.1\r\nHost: " + authority +
                    "\r\nUser-Agent: shmd-metrics-scrape\r\nAccept: text/plain\r\n"
                    "Connection: close\r\n\r\n";
  return getter;
}

VoidResult HttpGetter::Get(std::chrono::milliseconds timeout, HttpResponse* out) const {
  const auto deadline = SteadyClock::now() + timeout;
  const auto failed = [&](const std::string& what) {
    return Error(ErrorCode::kSystem, "GET " + url_ + ": " + what);
  };
  const auto timed_out = [&](const std::string& waiting_for) {
    return Error(ErrorCode::kDeadlineExceeded, "GET " + url_ + ": no " + waiting_for + " within " +
                                                   std::to_string(timeout.count()) + " ms");
  };
  out->status_ = 0;
  out->content_type_.clear();
  out->used_ = 0;
  out->body_start_ = 0;

  Socket socket(::socket(address_.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (socket.fd() < 0) return failed("socket: " + ErrnoText(errno));
  if (connect(socket.fd(), reinterpret_cast<const sockaddr*>(&address_), address_size_) != 0) {
    if (errno != EINPROGRESS) return failed("connect: " + ErrnoText(errno));
    if (!WaitFor(socket.fd(), POLLOUT, deadline)) return timed_out("connection");
    int error = 0;
    socklen_t size = sizeof error;
    getsockopt(socket.fd(), SOL_SOCKET, SO_ERROR, &error, &size);
    if (error != 0) return failed("connect: " + ErrnoText(error));
  }
  for (size_t sent = 0; sent < request_.size();) {
    const ssize_t n =
        send(socket.fd(), request_.data() + sent, request_.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (!WaitFor(socket.fd(), POLLOUT, deadline)) return timed_out("room to send the request");
    } else {
      return failed("send: " + ErrnoText(errno));
    }
  }

  // Reads until the body is complete: Content-Length bytes after the head, or the end of
  // the connection when the answer gives no length.
  std::string& raw = out->raw_;
  size_t& used = out->used_;
  bool have_head = false;
  size_t content_length = std::string::npos;
  for (;;) {
    if (have_head && content_length != std::string::npos &&
        used >= out->body_start_ + content_length) {
      used = out->body_start_ + content_length;  // anything after the body is not ours
      break;
    }
    if (raw.size() - used < kReadChunk) raw.resize(std::max(2 * raw.size(), used + kReadChunk));
    const ssize_t n = recv(socket.fd(), raw.data() + used, raw.size() - used, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (!WaitFor(socket.fd(), POLLIN, deadline)) {
        return timed_out(have_head ? "complete body (" + std::to_string(used) + " bytes so far)"
                                   : "answer");
      }
      continue;
    }
    if (n < 0) return failed("recv: " + ErrnoText(errno));
    if (n == 0) {  // the server closed the connection
      if (!have_head) return failed("the connection closed before a complete answer head");
      if (content_length != std::string::npos) {
        return failed("the connection closed after " + std::to_string(used - out->body_start_) +
                      " of " + std::to_string(content_length) + " body bytes");
      }
      break;
    }
    const size_t before = used;
    used += static_cast<size_t>(n);
    if (have_head) continue;
    const std::string_view received(raw.data(), used);
    const size_t end = received.find("\r\n\r\n", before >= 3 ? before - 3 : 0);
    if (end == std::string_view::npos) continue;
    have_head = true;
    out->body_start_ = end + 4;
    // "HTTP/1.1 200 OK", then "Name: value" lines.
    const std::string_view head = received.substr(0, end);
    const size_t space = head.find(' ');
    if (!StartsWithNoCase(head, "HTTP/1.") || space == std::string_view::npos) {
      return failed("not an HTTP/1.x answer: '" + std::string(head.substr(0, head.find('\r'))) +
                    "'");
    }
    out->status_ = std::atoi(std::string(head.substr(space + 1, 3)).c_str());
    for (size_t line = head.find("\r\n"); line != std::string_view::npos;) {
      const size_t start = line + 2;
      line = head.find("\r\n", start);
      const std::string_view header = head.substr(start, line - start);
      const size_t colon = header.find(':');
      if (colon == std::string_view::npos) continue;
      std::string_view value = header.substr(colon + 1);
      value.remove_prefix(std::min(value.find_first_not_of(" \t"), value.size()));
      if (StartsWithNoCase(header, "content-length:")) {
        content_length = std::strtoull(std::string(value).c_str(), nullptr, 10);
      } else if (StartsWithNoCase(header, "content-type:")) {
        out->content_type_ = value;
      } else if (StartsWithNoCase(header, "transfer-encoding:")) {
        return failed("a Transfer-Encoding (" + std::string(value) + ") this client cannot read");
      }
    }
  }
  return Ok{};
}

}  // namespace shmd::bench
