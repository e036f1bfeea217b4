// toolcall_log_tail: the last finished tool calls from the tool-call log.

#include "core/calls/toolcall_log.hpp"
#include "core/tools/builtin.hpp"
#include "core/tools/daemon_view.hpp"

namespace exai::core::tools {

namespace {

constexpr int kMaxEvents = 200;
// With a tool filter, this many of the newest lines are searched.
constexpr std::size_t kFilterWindow = 5000;

class ToolcallLogTail final : public Tool {
public:
  const ToolSpec& spec() const override
  {
    static const ToolSpec spec = [] {
      ToolSpec s;
      s.name = "toolcall_log_tail";
      s.title = "Last tool calls";
      s.description =
          "Show the last finished tool calls from the daemon's tool-call log "
          "($EXAI_STATE_DIR/toolcalls.jsonl): time, session (short id), tool, model, provider, "
          "duration, outcome, token usage and sizes. No prompt text unless the daemon runs with "
          "EXAI_TOOLCALL_LOG_CONTENT=true.";
      s.properties = {{"n",
                       {{"type", "integer"},
                        {"minimum", 1},
                        {"maximum", kMaxEvents},
                        {"default", 20},
                        {"description", "How many calls, newest last"}}},
                      {"tool",
                       {{"type", "string"},
                        {"minLength", 1},
                        {"maxLength", 64},
                        {"description", "Only calls of this tool"}}}};
      return s;
    }();
    return spec;
  }
  bool reusable() const override { return false; }
  ToolResult run(ToolContext& context) const override
  {
    ToolCallLog* log = context.daemon != nullptr ? context.daemon->toolcall_log : nullptr;
    if (log == nullptr) {
      return ToolFailure{Errc::tool_execution_error,
                         "the tool-call log is off: the daemon has no state directory",
                         {{"setting", "EXAI_STATE_DIR"}}};
    }
    const auto n =
        static_cast<std::size_t>(int_arg(context.arguments, "n", 1, kMaxEvents).value_or(20));
    const std::string tool = string_arg(context.arguments, "tool").value_or("");
    log->flush(); // every call that finished before this one
    auto events = log->last(tool.empty() ? n : kFilterWindow);
    if (!tool.empty()) {
      std::erase_if(events, [&](const nlohmann::json& e) {
        return !e.is_object() || !e.contains("tool") || e["tool"] != tool;
      });
      if (events.size() > n) {
        events.erase(events.begin(), events.end() - static_cast<std::ptrdiff_t>(n));
      }
    }
    const nlohmann::json report = {
        {"count", events.size()}, {"path", log->path()}, {"events", events}};
    return ToolSuccess{
        {envelope(name(),
                  report.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                  "json",
                  {{"dropped", log->dropped()}})}};
  }
};

} // namespace

std::unique_ptr<Tool>
make_toolcall_log_tail()
{
  return std::make_unique<ToolcallLogTail>();
}

} // namespace exai::core::tools
