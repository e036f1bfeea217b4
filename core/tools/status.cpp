// status: providers, models, capacity use and uptime of this daemon.

#include "core/tools/builtin.hpp"

namespace exai::core::tools {

namespace {

class Status final : public Tool {
public:
  std::string_view name() const override { return "status"; }
  std::string_view description() const override
  {
    return "Show the daemon's providers, model counts, capacity in use, counters and uptime.";
  }
  nlohmann::json input_schema() const override
  {
    return {{"type", "object"}, {"properties", nlohmann::json::object()}};
  }
  // The answer changes from one moment to the next.
  bool reusable() const override { return false; }
  ToolResult run(ToolContext& context) const override
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
    return ToolSuccess{{envelope(name(), report.dump(), "json")}};
  }
};

} // namespace

std::unique_ptr<Tool>
make_status()
{
  return std::make_unique<Status>();
}

} // namespace exai::core::tools
