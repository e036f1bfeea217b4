#pragma once

// What the diagnostic and provider tools read about the daemon that runs
// them, beyond ToolContext: its tools and their visibility, the tool-call
// log, the health document, and the upload cache. The engine owns it.

#include "core/util/ttl_cache.hpp"

#include <nlohmann/json.hpp>

#include <functional>
#include <string>

namespace exai::core {

class ToolCallLog;
class ToolRegistry;
class ToolVisibility;

struct DaemonView {
  const ToolRegistry& tools;
  const ToolVisibility& visibility;
  ToolCallLog* toolcall_log = nullptr;    // null without a state directory
  std::function<nlohmann::json()> health; // the health document; null: none
  // provider + content hash -> the uploaded file's JSON ({file_id, ...}):
  // identical content is not uploaded twice within the TTL.
  TtlCache<std::string>& uploads;
};

} // namespace exai::core
