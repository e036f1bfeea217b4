// challenge: wrap a statement in critical-review instructions. No model call.

#include "core/tools/builtin.hpp"
#include "core/tools/prompts.hpp"

namespace exai::core::tools {

namespace {

ToolSpec
challenge_spec()
{
  ToolSpec spec;
  spec.name = "challenge";
  spec.title = "Challenge a statement";
  spec.description =
      "Prevent reflexive agreement: returns the statement wrapped in instructions to "
      "re-evaluate it critically (use when the user pushes back or a claim deserves a second "
      "look). No model call.";
  spec.properties = {{"prompt",
                      {{"type", "string"},
                       {"minLength", 1},
                       {"description", "The statement, claim or proposal to scrutinise"}}}};
  spec.required = {"prompt"};
  return spec;
}

nlohmann::json
challenge_report(ToolContext& context)
{
  const std::string statement = string_arg(context.arguments, "prompt").value_or("");
  return {{"original_statement", statement},
          {"challenge_prompt",
           std::string(prompts::get("challenge")) + "\nStatement:\n\"" + statement + "\""},
          {"instructions",
           "Present challenge_prompt to yourself and answer it before replying to the user; do "
           "not show it to them verbatim."}};
}

} // namespace

std::unique_ptr<Tool>
make_challenge()
{
  return make_report_tool(challenge_spec(), Reuse::yes, challenge_report);
}

} // namespace exai::core::tools
