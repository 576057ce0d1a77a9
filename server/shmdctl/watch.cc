// watch: the daemon's event stream, one line (or one JSON object) per event, until --count
// events have come or the operator stops it (Ctrl-C, SIGTERM: a normal end, status 0).
#include <signal.h>

#include <chrono>
#include <csignal>

#include "server/shmdctl/commands.h"
#include "server/shmdctl/format.h"
#include "server/shmdctl/output.h"

namespace shmd::ctl {
namespace {

// How often the loop looks at the stop flag while no event comes.
constexpr std::chrono::milliseconds kPoll{200};

volatile std::sig_atomic_t stop_requested = 0;

void RequestStop(int) { stop_requested = 1; }

void CatchStopSignals() {
  struct sigaction action = {};
  action.sa_handler = RequestStop;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

// Pads `text` to `width` columns, so that the lines of a stream line up.
std::string Padded(std::string text, size_t width) {
  if (text.size() < width) text.resize(width, ' ');
  return text;
}

// "2024-05-01 12:00:00.123  #7  died      pools/frames  producer pid 4242 uid 1000, ...".
// The events include_existing adds have neither time nor sequence number: "-" and "#-".
std::string EventLine(const v1::Event& e) {
  const std::string sequence = e.sequence() ? "#" + std::to_string(e.sequence()) : "#-";
  std::string line = Padded(Time(e.time()), 23) + "  " + sequence + "  " +
                     Padded(EventTypeName(e.type()), 8) + "  " + e.object() + "  ";
  const bool endpoint = e.type() == v1::Event::TYPE_ENDPOINT_ATTACHED ||
                        e.type() == v1::Event::TYPE_ENDPOINT_DETACHED ||
                        e.type() == v1::Event::TYPE_ENDPOINT_DIED;
  if (endpoint) line += RoleName(e.role()) + " pid " + std::to_string(e.pid()) + " ";
  line += "uid " + std::to_string(e.uid());
  if (e.type() == v1::Event::TYPE_ENDPOINT_DIED) {
    line += ", reclaimed " + std::to_string(e.reclaimed_blocks()) + " blocks, cleared " +
            std::to_string(e.cleared_endpoints()) + " endpoints";
  }
  if (!e.lease().empty()) line += ", lease " + e.lease();
  return line + "\n";
}

}  // namespace

int Watch(Context& ctx) {
  Result<EventStream> stream = ctx.client.WatchEvents(ctx.args.include_existing);
  if (!stream.ok()) return Fail(stream.error());
  CatchStopSignals();
  for (uint64_t seen = 0; !stop_requested && (ctx.args.count == 0 || seen < ctx.args.count);) {
    const auto asked = std::chrono::steady_clock::now();
    Result<v1::Event> event = stream->Next(kPoll);
    if (!event.ok()) {
      // Next's own timeout (no event yet) comes after the whole wait; a stream that ended
      // with DEADLINE_EXCEEDED answers at once, and must end the loop rather than spin.
      const bool quiet = event.error().code() == ErrorCode::kDeadlineExceeded &&
                         std::chrono::steady_clock::now() - asked >= kPoll / 2;
      if (quiet) continue;
      if (stop_requested) return kExitOk;
      if (event.error().code() != ErrorCode::kUnavailable) return Fail(event.error());
      // The daemon stopped (or restarted): say so, and what to do, beside the client's words.
      return Fail(Error(event.error().code(),
                        event.error().message() +
                            " (the daemon stopped or closed the stream; watch again once it "
                            "is back, with --include-existing to see what exists)"));
    }
    ++seen;
    const int status = ctx.args.json ? PrintJson(*event) : Print(EventLine(*event));
    if (status != kExitOk) return status;
  }
  return kExitOk;
}

}  // namespace shmd::ctl
