// challenge: wrap a statement in critical-review instructions. No model call.

#include "core/tools/builtin.hpp"

namespace exai::core::tools {

namespace {

class Challenge final : public Tool {
public:
  std::string_view name() const override { return "challenge"; }
  std::string_view description() const override
  {
    return "Prevent reflexive agreement: wrap a statement in instructions to critically "
           "re-evaluate it instead of accepting it.";
  }
  nlohmann::json input_schema() const override
  {
    return {{"type", "object"},
            {"properties",
             {{"prompt",
               {{"type", "string"},
                {"description", "The statement, claim or proposal to scrutinise"}}}}},
            {"required", {"prompt"}}};
  }
  CallPlan plan(const nlohmann::json& arguments, const ProviderRegistry&) const override
  {
    if (string_arg(arguments, "prompt").value_or("").empty()) {
      throw Error(Errc::validation_error, "argument 'prompt' is required");
    }
    return {};
  }
  ToolResult run(ToolContext& context) const override
  {
    const std::string statement = string_arg(context.arguments, "prompt").value_or("");
    const std::string content =
        "CRITICAL REEVALUATION REQUIRED - You MUST think critically about this statement "
        "rather than agreeing with it. Check it against the facts and the code, look for "
        "flaws, missing cases and better alternatives, and say plainly where it is wrong. "
        "Agree only where the evidence supports it.\n\nStatement to evaluate:\n\"" +
        statement + "\"";
    return ToolSuccess{{envelope(name(), content, "text", {{"original_statement", statement}})}};
  }
};

} // namespace

std::unique_ptr<Tool>
make_challenge()
{
  return std::make_unique<Challenge>();
}

} // namespace exai::core::tools
