// A minimal HTTP/1.1 GET for scraping the daemon's /metrics: one request per connection
// ("Connection: close", as the daemon answers anyway), every wait under one deadline, no
// library. Only what a scrape of shmd needs: http:// URLs with a numeric host, a
// Content-Length (or the connection's end) delimiting the body, no chunked encoding.
#ifndef SHMD_BENCH_METRICS_HTTP_GET_H_
#define SHMD_BENCH_METRICS_HTTP_GET_H_

#include <sys/socket.h>

#include <chrono>
#include <string>
#include <string_view>

#include "shmd/dataplane/result.h"

namespace shmd::bench {

// One answer, reusable: its buffer keeps its size from call to call, so repeated scrapes of
// the same size neither allocate nor zero-fill (a scrape of 10,000 rings is megabytes).
class HttpResponse {
 public:
  int status() const { return status_; }  // 200, 404...
  const std::string& content_type() const { return content_type_; }
  std::string_view body() const {
    return std::string_view(raw_).substr(body_start_, used_ - body_start_);
  }

 private:
  friend class HttpGetter;
  int status_ = 0;
  std::string content_type_;
  std::string raw_;  // head and body as received; only the first used_ bytes are valid
  size_t used_ = 0;
  size_t body_start_ = 0;
};

class HttpGetter {
 public:
  // "http://127.0.0.1:PORT/metrics". The address is resolved here, once, so no scrape
  // times a name lookup.
  static Result<HttpGetter> ForUrl(const std::string& url);

  // Connects, sends the request, reads the whole answer within `timeout`.
  VoidResult Get(std::chrono::milliseconds timeout, HttpResponse* out) const;

  const std::string& url() const { return url_; }

 private:
  std::string url_;
  std::string request_;  // the request's bytes, built once
  sockaddr_storage address_{};
  socklen_t address_size_ = 0;
};

}  // namespace shmd::bench

#endif  // SHMD_BENCH_METRICS_HTTP_GET_H_
