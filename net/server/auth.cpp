#include "net/server/auth.hpp"

#include <Poco/Net/IPAddress.h>

#include <algorithm>
#include <cctype>

namespace exai::net {

namespace {

std::string
lowercase(std::string_view text)
{
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) {
    return static_cast<char>(std::tolower(c));
  });
  return out;
}

std::string_view
without_trailing_slash(std::string_view text)
{
  while (!text.empty() && text.back() == '/') {
    text.remove_suffix(1);
  }
  return text;
}

} // namespace

bool
constant_time_equal(std::string_view a, std::string_view b) noexcept
{
  // Walk the longer input completely; a length mismatch still costs the same
  // loop and only flips the accumulated difference.
  const std::size_t n = std::max(a.size(), b.size());
  unsigned diff = a.size() == b.size() ? 0U : 1U;
  for (std::size_t i = 0; i < n; ++i) {
    const auto x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0U;
    const auto y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0U;
    diff |= x ^ y;
  }
  return diff == 0;
}

bool
is_loopback_host(std::string_view host)
{
  std::string h = lowercase(host);
  if (h == "localhost") {
    return true;
  }
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') {
    h = h.substr(1, h.size() - 2);
  }
  Poco::Net::IPAddress address;
  if (!Poco::Net::IPAddress::tryParse(h, address)) {
    return false;
  }
  return address.isLoopback();
}

bool
loopback_host_header(std::string_view host_header)
{
  std::string_view host = host_header;
  if (!host.empty() && host.front() == '[') {
    const auto close = host.find(']');
    if (close == std::string_view::npos) {
      return false;
    }
    const std::string_view rest = host.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') {
      return false;
    }
    host = host.substr(0, close + 1);
  } else if (const auto colon = host.find(':'); colon != std::string_view::npos) {
    if (host.find(':', colon + 1) != std::string_view::npos) {
      return is_loopback_host(host); // a bare IPv6 address
    }
    host = host.substr(0, colon);
  }
  return is_loopback_host(host);
}

bool
origin_allowed(std::string_view origin, const std::vector<std::string>& allowed)
{
  const std::string value = lowercase(without_trailing_slash(origin));
  for (const auto& entry : allowed) {
    if (value == lowercase(without_trailing_slash(entry))) {
      return true;
    }
  }
  std::string_view rest = value;
  if (rest.substr(0, 7) == "http://") {
    rest.remove_prefix(7);
  } else if (rest.substr(0, 8) == "https://") {
    rest.remove_prefix(8);
  } else {
    return false;
  }
  // host [":" port], where host may be a bracketed IPv6 literal.
  std::string_view host = rest;
  std::string_view port;
  if (!rest.empty() && rest.front() == '[') {
    const auto close = rest.find(']');
    if (close == std::string_view::npos) {
      return false;
    }
    host = rest.substr(0, close + 1);
    const auto after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return false;
      }
      port = after.substr(1);
    }
  } else if (const auto colon = rest.find(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  if (!std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      port.size() > 5) {
    return false;
  }
  return host == "127.0.0.1" || host == "localhost" || host == "[::1]";
}

std::string_view
rotate_result_name(RotateResult result) noexcept
{
  switch (result) {
  case RotateResult::ok:
    return "ok";
  case RotateResult::unauthorized:
    return "unauthorized";
  case RotateResult::missing_params:
    return "missing_params";
  case RotateResult::too_short:
    return "too_short";
  }
  return "unauthorized";
}

bool
TokenStore::required() const
{
  const std::lock_guard lock(mutex_);
  return !token_.empty();
}

bool
TokenStore::accepts(std::string_view presented) const
{
  const std::lock_guard lock(mutex_);
  return token_.empty() || constant_time_equal(presented, token_);
}

RotateResult
TokenStore::rotate(std::optional<std::string_view> old_token,
                   std::optional<std::string_view> new_token)
{
  if (!old_token || !new_token || new_token->empty()) {
    return RotateResult::missing_params;
  }
  const std::lock_guard lock(mutex_);
  // Without a configured token there is nothing to rotate: letting any
  // client set one would let any local process lock everyone else out.
  if (token_.empty() || !constant_time_equal(*old_token, token_)) {
    return RotateResult::unauthorized;
  }
  if (new_token->size() < kMinTokenLength) {
    return RotateResult::too_short;
  }
  token_ = std::string(*new_token);
  ++generation_;
  return RotateResult::ok;
}

std::uint64_t
TokenStore::generation() const
{
  const std::lock_guard lock(mutex_);
  return generation_;
}

bool
TokenStore::accepts_bearer(std::string_view authorization) const
{
  if (!required()) {
    return true;
  }
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.size() <= kBearer.size() ||
      authorization.substr(0, kBearer.size()) != kBearer) {
    return false;
  }
  return accepts(authorization.substr(kBearer.size()));
}

} // namespace exai::net
