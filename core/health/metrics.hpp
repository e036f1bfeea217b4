#pragma once

#include "core/health/health.hpp"

#include <string>
#include <string_view>

namespace exai::core {

// The daemon's metrics in Prometheus text exposition format 0.0.4: a HELP
// and TYPE line per family, escaped label values, cumulative histogram
// buckets ending in le="+Inf" with _sum and _count.
std::string render_prometheus(const HealthInputs& inputs);

// A label value escaped for the exposition format (\\, \", \n).
std::string escape_label_value(std::string_view value);

} // namespace exai::core
