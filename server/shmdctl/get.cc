// get: one object, every detail.
#include "server/shmdctl/commands.h"
#include "server/shmdctl/describe.h"
#include "server/shmdctl/output.h"

namespace shmd::ctl {

int Get(Context& ctx) {
  const api::ObjectName& name = ctx.args.object;
  const bool json = ctx.args.json;
  auto details = [](const auto& object) { return Details(object); };
  if (name.collection == "rings") return Answer(json, ctx.client.GetRing(name.Full()), details);
  if (name.collection == "pools") return Answer(json, ctx.client.GetPool(name.Full()), details);
  return Answer(json, ctx.client.GetRegion(name.Full()), details);
}

}  // namespace shmd::ctl
