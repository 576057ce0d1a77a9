// shmd: flags -> options -> server; SIGTERM/SIGINT -> shutdown.
#include <signal.h>

#include <cstdio>
#include <string>
#include <vector>

#include "server/flags.h"
#include "server/server.h"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  shmd::Result<shmd::server::Flags> flags = shmd::server::ParseFlags(args);
  if (!flags.ok()) {
    std::fprintf(stderr, "shmd: %s\n", flags.error().message().c_str());
    return 2;
  }
  if (flags->help) {
    std::fputs(shmd::server::Usage().c_str(), stdout);
    return 0;
  }
  if (flags->version) {
    std::printf("shmd %s\n", shmd::server::kVersion);
    return 0;
  }
  // Block the stop signals in every thread (gRPC's included); this one waits for them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto server = shmd::server::Server::Start(flags->options);
  if (!server.ok()) {
    std::fprintf(stderr, "shmd: %s\n", server.error().message().c_str());
    return 1;
  }
  const auto& o = flags->options;
  std::fputs(server.value()->adoption_report().c_str(), stdout);
  std::string listen;
  for (const auto& l : o.listen) listen += " " + l;
  const std::string& metrics = server.value()->metrics_url();
  std::printf("shmd %s serving on%s; objects in %s (namespace %s); metrics %s; pid %d\n",
              shmd::server::kVersion, listen.c_str(), o.dir.path.c_str(), o.dir.ns.c_str(),
              metrics.empty() ? "off" : metrics.c_str(), getpid());
  std::fflush(stdout);
  int sig = 0;
  sigwait(&stop, &sig);
  std::printf("shmd: %s, shutting down (objects stay)\n", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  std::fflush(stdout);
  server.value()->Shutdown();
  return 0;
}
