// exai serve: Run the daemon in the foreground until SIGINT/SIGTERM.

#include "cmd/command.hpp"
#include "core/log.hpp"

namespace exai::cmd {

Command
add_serve(CLI::App& root)
{
  CLI::App* cli = root.add_subcommand("serve", "Run the daemon in the foreground until SIGINT/SIGTERM");
  return {cli, [](const GlobalOptions&) {
            core::log::get("cmd")->error("exai serve: not implemented yet");
            return kExitSoftware;
          }};
}

} // namespace exai::cmd
