// status: providers, models, capacity use and uptime of this daemon.

#include "core/tools/builtin.hpp"

namespace exai::core::tools {

namespace {

class Status final : public Tool {
public:
  const ToolSpec& spec() const override
  {
    static const ToolSpec spec = [] {
      ToolSpec s;
      s.name = "status";
      s.title = "Daemon status";
      s.description =
          "Show the daemon's providers, model counts, capacity in use, counters and uptime.";
      return s;
    }();
    return spec;
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
