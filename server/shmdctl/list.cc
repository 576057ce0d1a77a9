// list: every object the daemon serves, as `ipcs` shows System V's.
#include <cstdio>
#include <string>
#include <vector>

#include "server/shmdctl/commands.h"
#include "server/shmdctl/describe.h"
#include "server/shmdctl/format.h"
#include "server/shmdctl/output.h"
#include "server/shmdctl/table.h"

namespace shmd::ctl {
namespace {

struct Listing {
  std::vector<v1::Ring> rings;
  std::vector<v1::Pool> pools;
  std::vector<v1::Region> regions;
};

// `only` is the collection asked for, "" for all.
bool Wants(const std::string& only, const char* collection) {
  return only.empty() || only == collection;
}

template <class T>
VoidResult Fetch(Client& client, Result<std::vector<T>> (Client::*list_all)(),
                 std::vector<T>* out) {
  Result<std::vector<T>> r = (client.*list_all)();
  if (!r.ok()) return r.error();
  *out = std::move(r).value();
  return Ok{};
}

std::string Owner(const v1::ObjectInfo& info) { return std::to_string(info.owner_uid()); }

std::string ListTable(const Listing& all) {
  Table table({{"NAME"},
               {"KIND"},
               {"SIZE", Table::Align::kRight},
               {"USED", Table::Align::kRight},
               {"MESSAGES W/R", Table::Align::kRight},
               {"ENDPOINTS"},
               {"OWNER", Table::Align::kRight},
               {"MODE"}});
  for (const v1::Ring& r : all.rings) {
    const v1::RingUsage& u = r.usage();
    table.AddRow({r.name(), KindName(r.kind()), Bytes(r.capacity_bytes()),
                  Percent(u.used_bytes(), r.capacity_bytes()),
                  std::to_string(u.messages_written()) + "/" + std::to_string(u.messages_read()),
                  EndpointSummary(r.info(), false), Owner(r.info()), Mode(r.mode())});
  }
  for (const v1::Pool& p : all.pools) {
    table.AddRow({p.name(), "pool", Bytes(uint64_t{p.block_size_bytes()} * p.block_count()),
                  std::to_string(p.usage().blocks_in_use()) + "/" + std::to_string(p.block_count()),
                  "-", EndpointSummary(p.info(), false), Owner(p.info()), Mode(p.mode())});
  }
  for (const v1::Region& r : all.regions) {
    table.AddRow({r.name(), "region", Bytes(r.size_bytes()), "-", "-",
                  EndpointSummary(r.info(), true), Owner(r.info()), Mode(r.mode())});
  }
  return table.Render();
}

// {"rings":[...],"pools":[...],"regions":[...]}, only the collection asked for when one is.
int PrintListJson(const Listing& all, const std::string& only) {
  std::string out;
  auto add = [&](const char* key, const auto& items) -> VoidResult {
    if (!Wants(only, key)) return Ok{};
    Result<std::string> array = JsonArray(items);
    if (!array.ok()) return array.error();
    out += (out.empty() ? "{\"" : ",\"") + std::string(key) + "\":" + *array;
    return Ok{};
  };
  VoidResult r = add("rings", all.rings);
  if (r.ok()) r = add("pools", all.pools);
  if (r.ok()) r = add("regions", all.regions);
  if (!r.ok()) return Fail(r.error());
  return Print(out + "}\n");
}

}  // namespace

int List(Context& ctx) {
  const std::string& only = ctx.args.operand;  // ParseArgs: "", rings, pools or regions
  Listing all;
  VoidResult r = Ok{};
  if (Wants(only, "rings")) r = Fetch(ctx.client, &Client::ListAllRings, &all.rings);
  if (r.ok() && Wants(only, "pools")) r = Fetch(ctx.client, &Client::ListAllPools, &all.pools);
  if (r.ok() && Wants(only, "regions")) {
    r = Fetch(ctx.client, &Client::ListAllRegions, &all.regions);
  }
  if (!r.ok()) return Fail(r.error());
  if (ctx.args.json) return PrintListJson(all, only);
  if (all.rings.empty() && all.pools.empty() && all.regions.empty()) {
    // A sentence, not an empty table, and on stderr: stdout carries only tables.
    std::fprintf(stderr, "no %s; make one with 'shmdctl create'\n",
                 only.empty() ? "objects" : only.c_str());
    return kExitOk;
  }
  return Print(ListTable(all));
}

}  // namespace shmd::ctl
