// status: providers, models, capacity use and uptime of this daemon.

#include "core/tools/builtin.hpp"

namespace exai::core::tools {

namespace {

nlohmann::json
status_report(ToolContext& context)
{
  nlohmann::json providers = nlohmann::json::array();
  for (const auto& provider : context.providers.providers()) {
    providers.push_back({{"id", provider.id},
                         {"available", provider.available()},
                         {"models", provider.models.size()},
                         {"circuit", context.chat.circuit_state(provider.id)}});
  }
  nlohmann::json report =
      context.daemon_status ? context.daemon_status() : nlohmann::json::object();
  report["providers"] = providers;
  report["default_model"] = context.providers.default_model();
  return report;
}

} // namespace

std::unique_ptr<Tool>
make_status()
{
  // The answer changes from one moment to the next: never reused.
  return make_report_tool(
      {.name = "status",
       .title = "Daemon status",
       .description =
           "Show the daemon's providers, model counts, capacity in use, counters and uptime."},
      Reuse::no,
      status_report);
}

} // namespace exai::core::tools
