// exai mcp: Stdio MCP server bridging to the daemon.

#include "cmd/command.hpp"
#include "core/log.hpp"

namespace exai::cmd {

Command
add_mcp(CLI::App& root)
{
  CLI::App* cli = root.add_subcommand("mcp", "Stdio MCP server bridging to the daemon");
  return {cli, [](const GlobalOptions&) {
            core::log::get("cmd")->error("exai mcp: not implemented yet");
            return kExitSoftware;
          }};
}

} // namespace exai::cmd
