// exai detect-providers: Show configured providers, models and key presence.

#include "cmd/command.hpp"
#include "core/log.hpp"

namespace exai::cmd {

Command
add_detect_providers(CLI::App& root)
{
  CLI::App* cli = root.add_subcommand("detect-providers", "Show configured providers, models and key presence");
  return {cli, [](const GlobalOptions&) {
            core::log::get("cmd")->error("exai detect-providers: not implemented yet");
            return kExitSoftware;
          }};
}

} // namespace exai::cmd
