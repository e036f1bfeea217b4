// health: the daemon's health document (the same as GET /health) as a tool.

#include "core/tools/builtin.hpp"
#include "core/tools/daemon_view.hpp"

namespace exai::core::tools {

namespace {

nlohmann::json
health_report(ToolContext& context)
{
  if (context.daemon != nullptr && context.daemon->health) {
    return context.daemon->health();
  }
  if (context.daemon_status) {
    return context.daemon_status();
  }
  return {};
}

} // namespace

std::unique_ptr<Tool>
make_health()
{
  return make_report_tool(
      {.name = "health",
       .title = "Daemon health",
       .description =
           "Show the daemon's health document (the same JSON as GET /health and the health "
           "file): state, uptime, sessions, capacity per scope, calls in flight, circuits and "
           "counters."},
      Reuse::no,
      health_report);
}

} // namespace exai::core::tools
