// A plain HTTP GET for tests (the daemon's /metrics), with a timeout: no client library.
#pragma once

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

namespace shmd::testing {

struct HttpResponse {
  int status = 0;  // 0: no answer
  std::string headers;
  std::string body;
};

// `url` is "http://host:port/path".
inline HttpResponse HttpGet(const std::string& url, int timeout_ms = 5000) {
  HttpResponse out;
  const std::string rest = url.substr(url.find("//") + 2);
  const std::string hostport = rest.substr(0, rest.find('/'));
  const std::string path = rest.substr(hostport.size());
  const std::string host = hostport.substr(0, hostport.rfind(':'));
  const std::string port = hostport.substr(hostport.rfind(':') + 1);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* ai = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &ai) != 0) return out;
  int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const bool connected = fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0;
  freeaddrinfo(ai);
  if (!connected) {
    if (fd >= 0) close(fd);
    return out;
  }
  const std::string request = "GET " + path + " HTTP/1.1\r\nHost: " + hostport +
                              "\r\nConnection: close\r\n\r\n";
  (void)!write(fd, request.data(), request.size());
  std::string all;
  char buf[65536];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0) break;
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    all.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  const size_t split = all.find("\r\n\r\n");
  if (split == std::string::npos || all.rfind("HTTP/1.1 ", 0) != 0) return out;
  out.status = std::atoi(all.c_str() + 9);
  out.headers = all.substr(0, split);
  out.body = all.substr(split + 4);
  return out;
}

}  // namespace shmd::testing
