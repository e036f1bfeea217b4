#pragma once

#include <Poco/Timespan.h>

#include <chrono>

namespace exai::net {

// A std::chrono duration as Poco's timeout type (microseconds).
inline Poco::Timespan
to_timespan(std::chrono::microseconds duration)
{
  return Poco::Timespan(duration.count());
}

} // namespace exai::net
