#include "core/mcp/mcp_event_id.hpp"

#include <charconv>

namespace exai::core::mcp {

namespace {

constexpr std::string_view kHex = "0123456789abcdef";

std::string
to_hex(std::string_view bytes)
{
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char c : bytes) {
    const auto byte = static_cast<unsigned char>(c);
    out += kHex[byte >> 4U];
    out += kHex[byte & 0xFU];
  }
  return out;
}

int
hex_value(char c) noexcept
{
  const auto at = kHex.find(c);
  return at == std::string_view::npos ? -1 : static_cast<int>(at);
}

std::optional<std::string>
from_hex(std::string_view text)
{
  if (text.size() % 2 != 0) {
    return std::nullopt;
  }
  std::string out;
  out.reserve(text.size() / 2);
  for (std::size_t i = 0; i < text.size(); i += 2) {
    const int high = hex_value(text[i]);
    const int low = hex_value(text[i + 1]);
    if (high < 0 || low < 0) {
      return std::nullopt;
    }
    out += static_cast<char>((high << 4) | low);
  }
  return out;
}

std::optional<std::uint64_t>
number(std::string_view text)
{
  std::uint64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || text.empty()) {
    return std::nullopt;
  }
  return value;
}

} // namespace

std::string
EventId::text() const
{
  return stream_key() + "." + std::to_string(seq) + "." + to_hex(request_id.dump());
}

std::string
EventId::stream_key() const
{
  return instance + "." + std::to_string(stream);
}

std::optional<EventId>
parse_event_id(std::string_view text)
{
  if (text.size() > kMaxEventIdBytes) {
    return std::nullopt;
  }
  std::string_view parts[4];
  for (int i = 0; i < 3; ++i) {
    const auto dot = text.find('.');
    if (dot == std::string_view::npos) {
      return std::nullopt;
    }
    parts[i] = text.substr(0, dot);
    text.remove_prefix(dot + 1);
  }
  parts[3] = text;
  if (parts[0].empty() || parts[0].size() > 32 ||
      parts[0].find_first_not_of(kHex) != std::string_view::npos) {
    return std::nullopt;
  }
  const auto stream = number(parts[1]);
  const auto seq = number(parts[2]);
  const auto id_text = from_hex(parts[3]);
  if (!stream || !seq || !id_text) {
    return std::nullopt;
  }
  auto id = nlohmann::json::parse(*id_text, nullptr, false);
  if (!id.is_string() && !id.is_number_integer()) {
    return std::nullopt;
  }
  return EventId{std::string(parts[0]), *stream, *seq, std::move(id)};
}

} // namespace exai::core::mcp
