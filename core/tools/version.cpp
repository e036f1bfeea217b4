// version: what this daemon is. No model call.

#include "core/tools/builtin.hpp"

namespace exai::core::tools {

namespace {

class Version final : public Tool {
public:
  const ToolSpec& spec() const override
  {
    static const ToolSpec spec = [] {
      ToolSpec s;
      s.name = "version";
      s.title = "Version";
      s.description = "Show the exai daemon version, protocol and configured providers.";
      return s;
    }();
    return spec;
  }
  ToolResult run(ToolContext& context) const override
  {
    nlohmann::json providers = nlohmann::json::array();
    for (const auto* provider : context.providers.configured()) {
      providers.push_back(provider->display_name);
    }
    const nlohmann::json info = {{"name", "exai"},
                                 {"version", EXAI_VERSION},
                                 {"protocol", "exai-ws/1"},
                                 {"providers", providers},
                                 {"default_model", context.providers.default_model()}};
    return ToolSuccess{{envelope(name(), info.dump(), "json")}};
  }
};

} // namespace

std::unique_ptr<Tool>
make_version()
{
  return std::make_unique<Version>();
}

} // namespace exai::core::tools
