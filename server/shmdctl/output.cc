#include "server/shmdctl/output.h"

#include <cstdio>

#include <google/protobuf/util/json_util.h>

namespace shmd::ctl {

Result<std::string> Json(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  std::string out;
  const auto status = google::protobuf::util::MessageToJsonString(message, &out, options);
  if (!status.ok()) {
    return Error(ErrorCode::kSystem,
                 "cannot print " + message.GetTypeName() + " as JSON: " + status.ToString());
  }
  return out;
}

int Print(const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  if (std::fflush(stdout) != 0 || std::ferror(stdout)) {
    std::perror("shmdctl: cannot write the output");
    return kExitFailed;
  }
  return kExitOk;
}

int PrintJson(const google::protobuf::Message& message) {
  Result<std::string> json = Json(message);
  if (!json.ok()) return Fail(json.error());
  return Print(*json + "\n");
}

int Fail(const Error& error) {
  std::fprintf(stderr, "shmdctl: %s\n", error.message().c_str());
  return kExitFailed;
}

int UsageFail(const std::string& message) {
  std::fprintf(stderr, "shmdctl: %s\n", message.c_str());
  if (message.find("--help") == std::string::npos) {
    std::fputs("Run 'shmdctl --help' for the commands and their flags.\n", stderr);
  }
  return kExitUsage;
}

}  // namespace shmd::ctl
