#include "net/server/auth.hpp"

#include "core/util/enum_names.hpp"

#include <Poco/Exception.h>
#include <Poco/Net/IPAddress.h>
#include <Poco/URI.h>

#include <algorithm>
#include <cctype>
#include <optional>

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

namespace {

// The host of an http(s) URL with nothing but a scheme, a host and a port
// (what Origin headers hold); nullopt for anything else.
std::optional<std::string>
origin_host(const std::string& text)
{
  try {
    const Poco::URI uri(text);
    const std::string scheme = uri.getScheme();
    if ((scheme != "http" && scheme != "https") || uri.getHost().empty() ||
        !uri.getUserInfo().empty() || !(uri.getPath().empty() || uri.getPath() == "/") ||
        !uri.getRawQuery().empty() || !uri.getFragment().empty()) {
      return std::nullopt;
    }
    // Poco is lenient ("http://[::1]evil" parses): the text must be exactly
    // scheme://host[:port] as Poco understood it.
    const std::string host = lowercase(uri.getHost());
    const std::string bracketed = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    const std::string base = scheme + "://" + bracketed;
    const std::string given = lowercase(without_trailing_slash(text));
    if (given != base && given != base + ":" + std::to_string(uri.getPort())) {
      return std::nullopt;
    }
    return host;
  } catch (const Poco::Exception&) {
    return std::nullopt;
  }
}

} // namespace

bool
loopback_host_header(std::string_view host_header)
{
  // A Host header is an authority: read it as one with Poco::URI.
  const auto host = origin_host("http://" + std::string(host_header));
  return host && is_loopback_host(*host);
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
  const auto host = origin_host(value);
  return host && (*host == "127.0.0.1" || *host == "localhost" || *host == "::1");
}

std::string_view
rotate_result_name(RotateResult result) noexcept
{
  static constexpr core::EnumNames<RotateResult, 4> kNames{
      {"ok", "unauthorized", "missing_params", "too_short"}, "unauthorized"};
  return kNames(result);
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
