// delete and resize: the calls that change an object that exists.
#include "server/shmdctl/commands.h"
#include "server/shmdctl/describe.h"
#include "server/shmdctl/output.h"

namespace shmd::ctl {

int Delete(Context& ctx) {
  const Args& a = ctx.args;
  const std::string name = a.object.Full();
  const DeleteOptions options{.force = a.force, .allow_missing = a.allow_missing};
  const VoidResult r = a.object.collection == "rings"   ? ctx.client.DeleteRing(name, options)
                       : a.object.collection == "pools" ? ctx.client.DeletePool(name, options)
                                                        : ctx.client.DeleteRegion(name, options);
  if (!r.ok()) return Fail(r.error());
  // The name needs no JSON escaping: ParseObjectName let through only [A-Za-z0-9._-] and '/'.
  if (a.json) return Print("{\"deleted\":\"" + name + "\"}\n");
  // With --allow-missing the daemon does not say whether there was anything to delete.
  return Print("deleted " + name + (a.allow_missing ? " (if it existed)" : "") + "\n");
}

// ParseArgs has made sure the name is a region's: rings and pools keep their size.
int Resize(Context& ctx) {
  return Answer(ctx.args.json, ctx.client.ResizeRegion(ctx.args.object.Full(), ctx.args.size),
                [](const v1::Region& region) { return "resized " + OneLine(region); });
}

}  // namespace shmd::ctl
