// Objects as text: one line (what create and resize print), every detail (get), and the
// short endpoint summary the list shows.
#pragma once

#include <string>

#include "shmd/v1/resources.pb.h"

namespace shmd::ctl {

std::string OneLine(const v1::Ring& ring);
std::string OneLine(const v1::Pool& pool);
std::string OneLine(const v1::Region& region);

// "key: value" lines, then the endpoint table.
std::string Details(const v1::Ring& ring);
std::string Details(const v1::Pool& pool);
std::string Details(const v1::Region& region);

// "1P 2S" (live producers, consumers, subscribers), "+1 dead" when some died and are not
// cleared yet; regions, which have no endpoint table, "2U" for their leases; "-" for none.
std::string EndpointSummary(const v1::ObjectInfo& info, bool region);

}  // namespace shmd::ctl
