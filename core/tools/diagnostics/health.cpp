// health: the daemon's health document (the same as GET /health) as a tool.

#include "core/tools/builtin.hpp"
#include "core/tools/daemon_view.hpp"

namespace exai::core::tools {

namespace {

class Health final : public Tool {
public:
  const ToolSpec& spec() const override
  {
    static const ToolSpec spec = [] {
      ToolSpec s;
      s.name = "health";
      s.title = "Daemon health";
      s.description =
          "Show the daemon's health document (the same JSON as GET /health and the health "
          "file): state, uptime, sessions, capacity per scope, calls in flight, circuits and "
          "counters.";
      return s;
    }();
    return spec;
  }
  bool reusable() const override { return false; }
  ToolResult run(ToolContext& context) const override
  {
    nlohmann::json health;
    if (context.daemon != nullptr && context.daemon->health) {
      health = context.daemon->health();
    } else if (context.daemon_status) {
      health = context.daemon_status();
    }
    return ToolSuccess{{envelope(name(), health.dump(), "json")}};
  }
};

} // namespace

std::unique_ptr<Tool>
make_health()
{
  return std::make_unique<Health>();
}

} // namespace exai::core::tools
