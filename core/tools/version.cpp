// version: what this daemon is. No model call.

#include "core/tools/builtin.hpp"

namespace exai::core::tools {

namespace {

nlohmann::json
version_report(ToolContext& context)
{
  nlohmann::json providers = nlohmann::json::array();
  for (const auto* provider : context.providers.configured()) {
    providers.push_back(provider->display_name);
  }
  return {{"name", "exai"},
          {"version", EXAI_VERSION},
          {"protocol", "exai-ws/1"},
          {"providers", providers},
          {"default_model", context.providers.default_model()}};
}

} // namespace

std::unique_ptr<Tool>
make_version()
{
  return make_report_tool(
      {.name = "version",
       .title = "Version",
       .description = "Show the exai daemon version, protocol and configured providers."},
      Reuse::yes,
      version_report);
}

} // namespace exai::core::tools
