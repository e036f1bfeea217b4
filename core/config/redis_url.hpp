#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace exai::core {

// EXAI_REDIS_URL: redis://[[user]:password@]host[:port][/db]. IPv6 hosts in
// brackets. TLS (rediss://) is not supported.
struct RedisUrl {
  std::string host;
  std::uint16_t port = 6379;
  std::string user;     // empty: the default user (AUTH password)
  std::string password; // empty: no AUTH
  int db = 0;
};

// Parses `text`. nullopt with `why` set (never echoing the password) when it
// is not such a URL.
std::optional<RedisUrl> parse_redis_url(std::string_view text, std::string& why);

} // namespace exai::core
