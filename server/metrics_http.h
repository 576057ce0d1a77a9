// The Prometheus endpoint: GET /metrics on a small HTTP/1.1 server of its own (one thread,
// one connection at a time, every read and write under a timeout), rendering collectables
// with prometheus-cpp's text serializer.
//
// Why not prometheus::Exposer: its answer carries no format version in the Content-Type
// ("text/plain; charset=utf-8"), which Prometheus 3 refuses without a fallback setting,
// it adds metrics about itself, and it takes ~2 s to stop. This one says
// "text/plain; version=0.0.4; charset=utf-8", which Prometheus 2 and 3 both accept.
#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <prometheus/collectable.h>

#include "shmd/dataplane/result.h"

namespace shmd::server {

inline constexpr char kMetricsContentType[] = "text/plain; version=0.0.4; charset=utf-8";

class MetricsHttpServer {
 public:
  // `address` is "host:port" (port 0: any free port). Collectables are asked at each scrape.
  static Result<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& address, std::vector<std::shared_ptr<prometheus::Collectable>> sources);
  ~MetricsHttpServer();  // stops the thread and closes the socket

  int port() const { return port_; }
  // The text a scrape gets (also what the tests feed to promtool).
  std::string Render() const;

 private:
  MetricsHttpServer(int listen_fd, int stop_fd, int port,
                    std::vector<std::shared_ptr<prometheus::Collectable>> sources);
  void Run();
  void Serve(int fd) const;

  int listen_fd_;
  int stop_fd_;
  int port_;
  std::vector<std::shared_ptr<prometheus::Collectable>> sources_;
  std::thread thread_;
};

}  // namespace shmd::server
