// activity: the tail of the daemon's in-memory activity log (every logger's
// recent lines plus one line per finished call), filtered.

#include "core/calls/toolcall_log.hpp"
#include "core/health/activity_log.hpp"
#include "core/tools/builtin.hpp"
#include "core/tools/daemon_view.hpp"

namespace exai::core::tools {

namespace {

constexpr int kMaxSince = 7 * 24 * 3600;

class Activity final : public Tool {
public:
  const ToolSpec& spec() const override
  {
    static const ToolSpec spec = [] {
      ToolSpec s;
      s.name = "activity";
      s.title = "Recent daemon activity";
      s.description =
          "Show the daemon's recent log lines (kept in memory: the last " +
          std::to_string(ActivityLog::kMaxLines) +
          "), including one line per finished tool call, filtered by level, tool, age and text.";
      s.properties = {
          {"lines",
           {{"type", "integer"},
            {"minimum", 1},
            {"maximum", static_cast<int>(ActivityLog::kMaxLines)},
            {"default", 200},
            {"description", "How many of the newest matching lines to return"}}},
          {"level",
           {{"type", "string"},
            {"enum", {"trace", "debug", "info", "warning", "error", "critical"}},
            {"description", "Only lines at this level or more severe"}}},
          {"tool",
           {{"type", "string"},
            {"minLength", 1},
            {"maxLength", 64},
            {"description", "Only lines about this tool (tool=<name>)"}}},
          {"since_seconds",
           {{"type", "integer"},
            {"minimum", 1},
            {"maximum", kMaxSince},
            {"description", "Only lines from the last N seconds"}}},
          {"contains",
           {{"type", "string"},
            {"minLength", 1},
            {"maxLength", 200},
            {"description", "Only lines containing this text (plain text, case-sensitive)"}}}};
      return s;
    }();
    return spec;
  }
  bool reusable() const override { return false; }
  ToolResult run(ToolContext& context) const override
  {
    const auto& args = context.arguments;
    const auto lines = static_cast<std::size_t>(
        int_arg(args, "lines", 1, static_cast<int>(ActivityLog::kMaxLines)).value_or(200));
    const std::string level_name = string_arg(args, "level").value_or("trace");
    const auto level = spdlog::level::from_str(level_name == "warning" ? "warn" : level_name);
    const std::string tool = string_arg(args, "tool").value_or("");
    const std::string contains = string_arg(args, "contains").value_or("");
    const auto since = int_arg(args, "since_seconds", 1, kMaxSince);
    const auto oldest = since ? std::chrono::system_clock::now() - std::chrono::seconds(*since)
                              : std::chrono::system_clock::time_point::min();
    const std::string tool_mark = "tool=" + tool;
    if (context.daemon != nullptr && context.daemon->toolcall_log != nullptr) {
      context.daemon->toolcall_log->flush(); // its writer logs one line per finished call
    }

    std::vector<std::string> matched;
    for (const auto& line : activity_log()->lines()) {
      if (line.level < level || line.time < oldest) {
        continue;
      }
      if (!tool.empty()) {
        const auto at = line.message.find(tool_mark);
        const auto end = at + tool_mark.size();
        if (at == std::string::npos || (end < line.message.size() && line.message[end] != ' ')) {
          continue;
        }
      }
      if (!contains.empty() && line.message.find(contains) == std::string::npos) {
        continue;
      }
      matched.push_back(line.text());
    }
    const std::size_t skip = matched.size() > lines ? matched.size() - lines : 0;
    std::string text;
    for (std::size_t i = skip; i < matched.size(); ++i) {
      text += matched[i] + "\n";
    }
    return ToolSuccess{{envelope(name(),
                                 text,
                                 "text",
                                 {{"matched", matched.size()},
                                  {"returned", matched.size() - skip},
                                  {"kept_max", ActivityLog::kMaxLines}})}};
  }
};

} // namespace

std::unique_ptr<Tool>
make_activity()
{
  return std::make_unique<Activity>();
}

} // namespace exai::core::tools
