#include "core/config/redis_url.hpp"

#include <charconv>

namespace exai::core {

namespace {

bool
parse_number(std::string_view text, long min, long max, long& out)
{
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, out);
  return !text.empty() && ec == std::errc() && ptr == end && out >= min && out <= max;
}

} // namespace

std::optional<RedisUrl>
parse_redis_url(std::string_view text, std::string& why)
{
  constexpr std::string_view kScheme = "redis://";
  if (text.substr(0, 9) == "rediss://") {
    why = "TLS (rediss://) is not supported; use redis://";
    return std::nullopt;
  }
  if (text.substr(0, kScheme.size()) != kScheme) {
    why = "expected redis://[[user]:password@]host[:port][/db]";
    return std::nullopt;
  }
  std::string_view rest = text.substr(kScheme.size());
  RedisUrl url;
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
    const std::string_view credentials = rest.substr(0, at);
    rest.remove_prefix(at + 1);
    const auto colon = credentials.find(':');
    if (colon == std::string_view::npos) {
      url.password = std::string(credentials);
    } else {
      url.user = std::string(credentials.substr(0, colon));
      url.password = std::string(credentials.substr(colon + 1));
    }
  }
  std::string_view authority = rest;
  if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
    authority = rest.substr(0, slash);
    const std::string_view db = rest.substr(slash + 1);
    long n = 0;
    if (!db.empty()) {
      if (!parse_number(db, 0, 65535, n)) {
        why = "the database after '/' must be a number from 0";
        return std::nullopt;
      }
      url.db = static_cast<int>(n);
    }
  }
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) {
      why = "unclosed '[' in the host";
      return std::nullopt;
    }
    url.host = std::string(authority.substr(1, close - 1));
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        why = "expected ':' and a port after ']'";
        return std::nullopt;
      }
      port = after.substr(1);
    }
  } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
    url.host = std::string(authority.substr(0, colon));
    port = authority.substr(colon + 1);
    if (port.empty()) {
      why = "empty port after ':'";
      return std::nullopt;
    }
  } else {
    url.host = std::string(authority);
  }
  if (url.host.empty()) {
    why = "no host";
    return std::nullopt;
  }
  if (!port.empty()) {
    long n = 0;
    if (!parse_number(port, 1, 65535, n)) {
      why = "the port must be a number from 1 to 65535";
      return std::nullopt;
    }
    url.port = static_cast<std::uint16_t>(n);
  }
  return url;
}

} // namespace exai::core
