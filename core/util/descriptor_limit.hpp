#pragma once

// The open-descriptor limit: both `exai serve` and `exai stress` hold one
// descriptor per connection, far beyond the usual soft limit of 1024.

#include <cstdint>

namespace exai::core {

// Raises the soft RLIMIT_NOFILE to the hard limit; returns the soft limit in
// force afterwards (0 when it cannot be read).
std::uint64_t raise_descriptor_limit() noexcept;

} // namespace exai::core
