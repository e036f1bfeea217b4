#include "core/tools/tool.hpp"

#include "core/calls/conversation_store.hpp"
#include "core/tools/model_call.hpp"

#include <cmath>

namespace exai::core {

std::unique_ptr<ModelStep>
Tool::model_step(ToolContext& /*context*/) const
{
  return nullptr;
}

CallPlan
Tool::plan(const PlanInput& input) const
{
  if (spec().model_class == ModelClass::none) {
    return {};
  }
  return plan_model(input, spec().model_class);
}

namespace {

class ReportTool final : public Tool {
public:
  ReportTool(ToolSpec spec, Reuse reuse, std::function<nlohmann::json(ToolContext&)> report)
      : spec_(std::move(spec))
      , reuse_(reuse)
      , report_(std::move(report))
  {
  }
  const ToolSpec& spec() const override { return spec_; }
  bool reusable() const override { return reuse_ == Reuse::yes; }
  ToolResult run(ToolContext& context) const override
  {
    return ToolSuccess{{envelope(name(), report_(context).dump(), "json")}};
  }

private:
  ToolSpec spec_;
  Reuse reuse_;
  std::function<nlohmann::json(ToolContext&)> report_;
};

} // namespace

std::unique_ptr<Tool>
make_report_tool(ToolSpec spec, Reuse reuse, std::function<nlohmann::json(ToolContext&)> report)
{
  return std::make_unique<ReportTool>(std::move(spec), reuse, std::move(report));
}

CallPlan
plan_model(const PlanInput& input, ModelClass model_class)
{
  const auto& args = input.arguments;
  CallPlan plan;
  plan.conversation_id = string_arg(args, "continuation_id").value_or("");
  std::string requested = string_arg(args, "model").value_or("");
  std::string kept;
  if (requested.empty() && !plan.conversation_id.empty()) {
    // A continued thread keeps the model of its last turn.
    if (const auto thread = input.conversations.find(plan.conversation_id);
        thread && !thread->model.empty()) {
      requested = thread->model;
      kept = thread->model;
    }
  }
  RouteNeeds needs;
  needs.model_class = model_class;
  needs.vision = !strings_arg(args, "images").empty();
  const auto thinking = string_arg(args, "thinking_mode").value_or("");
  needs.thinking = thinking == "high" || thinking == "max";
  const ModelChoice choice = choose_model(input.providers, requested, needs);
  plan.provider = choice.primary.provider;
  plan.model = choice.primary.model;
  plan.automatic = choice.automatic;
  plan.fallback = choice.fallback;
  plan.model_reason = kept.empty() ? choice.reason : "continuation keeps its model " + kept;
  return plan;
}

std::string
envelope(std::string_view tool_name,
         std::string_view content,
         std::string_view content_type,
         nlohmann::json metadata,
         nlohmann::json continuation_offer)
{
  metadata["tool_name"] = tool_name;
  const bool has_offer = !continuation_offer.is_null();
  const nlohmann::json out = {
      {"status", has_offer ? "continuation_available" : "success"},
      {"content", content},
      {"content_type", content_type},
      {"metadata", std::move(metadata)},
      {"continuation_offer", std::move(continuation_offer)},
  };
  return out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

namespace {

[[noreturn]] void
bad_arg(std::string_view name, std::string_view expected)
{
  throw Error(Errc::validation_error,
              "argument '" + std::string(name) + "' must be " + std::string(expected));
}

const nlohmann::json*
find_arg(const nlohmann::json& arguments, std::string_view name)
{
  const auto it = arguments.find(name);
  if (it == arguments.end() || it->is_null()) {
    return nullptr;
  }
  return &*it;
}

// The argument as a T, nullopt when absent or null; `is` checks its JSON
// type (else Error naming the argument and what it must be).
template <typename T>
std::optional<T>
typed_arg(const nlohmann::json& arguments,
          std::string_view name,
          bool (nlohmann::json::*is)() const noexcept,
          std::string_view expected)
{
  const auto* value = find_arg(arguments, name);
  if (value == nullptr) {
    return std::nullopt;
  }
  if (!(value->*is)()) {
    bad_arg(name, expected);
  }
  return value->get<T>();
}

} // namespace

std::optional<std::string>
string_arg(const nlohmann::json& arguments, std::string_view name)
{
  return typed_arg<std::string>(arguments, name, &nlohmann::json::is_string, "a string");
}

std::optional<double>
number_arg(const nlohmann::json& arguments, std::string_view name, double min, double max)
{
  const auto number = typed_arg<double>(arguments, name, &nlohmann::json::is_number, "a number");
  if (number && (!std::isfinite(*number) || *number < min || *number > max)) {
    bad_arg(name, "a number from " + std::to_string(min) + " to " + std::to_string(max));
  }
  return number;
}

std::optional<int>
int_arg(const nlohmann::json& arguments, std::string_view name, int min, int max)
{
  const auto number =
      typed_arg<std::int64_t>(arguments, name, &nlohmann::json::is_number_integer, "an integer");
  if (number && (*number < min || *number > max)) {
    bad_arg(name, "an integer from " + std::to_string(min) + " to " + std::to_string(max));
  }
  return number ? std::optional<int>(static_cast<int>(*number)) : std::nullopt;
}

std::optional<bool>
bool_arg(const nlohmann::json& arguments, std::string_view name)
{
  return typed_arg<bool>(arguments, name, &nlohmann::json::is_boolean, "true or false");
}

std::vector<std::string>
strings_arg(const nlohmann::json& arguments, std::string_view name)
{
  std::vector<std::string> out;
  const auto* value = find_arg(arguments, name);
  if (value == nullptr) {
    return out;
  }
  if (!value->is_array()) {
    bad_arg(name, "an array of strings");
  }
  for (const auto& item : *value) {
    if (!item.is_string()) {
      bad_arg(name, "an array of strings");
    }
    out.push_back(item.get<std::string>());
  }
  return out;
}

} // namespace exai::core
