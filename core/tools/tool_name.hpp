#pragma once

// How a tool name arrives and how it is matched, kept apart from the
// registry so the parsers of client frames (and their fuzz targets) do not
// pull in every tool.

#include <array>
#include <string_view>

namespace exai::core {

// `name` without a trailing _EXAI-WS / -EXAI-WS / _EXAI_WS / -EXAI_WS.
// Applied once per call, where a request is parsed (op protocol, /mcp);
// ToolRegistry::find() matches names exactly.
constexpr std::string_view
strip_tool_suffix(std::string_view name) noexcept
{
  constexpr std::array<std::string_view, 4> kSuffixes = {
      "_EXAI-WS", "-EXAI-WS", "_EXAI_WS", "-EXAI_WS"};
  for (const auto suffix : kSuffixes) {
    if (name.size() > suffix.size() && name.substr(name.size() - suffix.size()) == suffix) {
      return name.substr(0, name.size() - suffix.size());
    }
  }
  return name;
}

} // namespace exai::core
