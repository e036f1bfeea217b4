// planner: builds a plan step by step, with revisions of earlier steps and
// alternative branches. No model call: the agent does the thinking; exai keeps
// the plan under a continuation_id and presents it at the end.

#include "core/calls/conversation_store.hpp"
#include "core/tools/builtin.hpp"
#include "core/tools/workflow/step_state.hpp"

#include <map>

namespace exai::core::tools {

namespace {

using nlohmann::json;
using workflow::invalid;

constexpr int kMaxSteps = 100;
// Plans at least this long get reflection actions in their first steps.
constexpr int kDeepPlanSteps = 5;
constexpr int kReflectionSteps = 3;

ToolSpec
planner_spec()
{
  ToolSpec spec;
  spec.name = "planner";
  spec.title = "Plan step by step";
  spec.description =
      "Builds a plan one step per call, with revisions of earlier steps and alternative "
      "branches; exai keeps the plan under a continuation_id and presents the whole of it "
      "after the last step. No model call: you do the thinking, one step at a time.";
  spec.common = field::kContinuationId;
  const json step_ref = {{"type", "integer"}, {"minimum", 1}, {"maximum", kMaxSteps}};
  spec.properties = {
      {"step",
       {{"type", "string"},
        {"minLength", 1},
        {"maxLength", kMaxPromptChars},
        {"description",
         "This step of the plan. Step 1 states the task, its scope and constraints"}}},
      {"step_number",
       {{"type", "integer"},
        {"minimum", 1},
        {"maximum", kMaxSteps},
        {"description", "1 starts a plan; each later step is the next number"}}},
      {"total_steps",
       {{"type", "integer"},
        {"minimum", 1},
        {"maximum", kMaxSteps},
        {"description", "Your current estimate of the plan's steps (adjust as you go)"}}},
      {"next_step_required",
       {{"type", "boolean"}, {"description", "false on the last step: the plan is presented"}}},
      {"is_step_revision",
       {{"type", "boolean"},
        {"default", false},
        {"description", "This step replaces an earlier one (name it in revises_step_number)"}}},
      {"revises_step_number", step_ref},
      {"is_branch_point",
       {{"type", "boolean"},
        {"default", false},
        {"description",
         "This step starts an alternative branch after branch_from_step, named branch_id"}}},
      {"branch_from_step", step_ref},
      {"branch_id",
       {{"type", "string"},
        {"minLength", 1},
        {"maxLength", 100},
        {"description",
         "The branch this step belongs to (e.g. 'use-redis'); steps without one are the "
         "main line"}}},
      {"more_steps_needed",
       {{"type", "boolean"},
        {"default", false},
        {"description", "More steps are needed than total_steps said"}}}};
  spec.properties["revises_step_number"]["description"] = "The earlier step this one revises";
  spec.properties["branch_from_step"]["description"] = "The step the new branch starts after";
  spec.required = {"step", "step_number", "total_steps", "next_step_required"};
  return spec;
}

// The plan after this step; throws Error(validation_error) on a step that
// does not fit it.
json
record(const json& previous, const json& args)
{
  const int number = int_arg(args, "step_number", 1, kMaxSteps).value_or(1);
  const int total = int_arg(args, "total_steps", 1, kMaxSteps).value_or(1);
  if (number > total) {
    invalid("step_number", number, "must be at most total_steps (" + std::to_string(total) + ")");
  }
  json plan =
      previous.is_object()
          ? previous
          : json{{"tool", "planner"}, {"steps", json::array()}, {"branches", json::object()}};
  json& steps = plan["steps"];
  const int last = steps.empty() ? 0 : steps.back().at("step_number").get<int>();
  if (number != last + 1) {
    invalid("step_number",
            number,
            last == 0 ? "a plan starts at step 1; later steps need the continuation_id step 1 "
                        "returned"
                      : "must be " + std::to_string(last + 1) + ", the next step of this plan");
  }
  json step = {{"step_number", number}, {"step", args.value("step", "")}};

  const auto in_range = [&](const char* field, const char* with, const std::optional<int>& value) {
    if (!value) {
      invalid(field, nullptr, std::string("required with ") + with);
    }
    if (*value > last) {
      invalid(field,
              *value,
              last == 0 ? "there is no earlier step"
                        : "must name an earlier step, 1 to " + std::to_string(last));
    }
  };
  const auto revises = int_arg(args, "revises_step_number", 1, kMaxSteps);
  if (bool_arg(args, "is_step_revision").value_or(false)) {
    in_range("revises_step_number", "is_step_revision", revises);
    step["revises"] = *revises;
  } else if (revises) {
    invalid("revises_step_number", *revises, "only with is_step_revision true");
  }

  const auto branch_from = int_arg(args, "branch_from_step", 1, kMaxSteps);
  const auto branch_id = string_arg(args, "branch_id");
  json& branches = plan["branches"];
  if (bool_arg(args, "is_branch_point").value_or(false)) {
    in_range("branch_from_step", "is_branch_point", branch_from);
    if (!branch_id) {
      invalid("branch_id", nullptr, "required with is_branch_point");
    }
    if (branches.contains(*branch_id)) {
      invalid("branch_id", *branch_id, "names an existing branch; choose a new id");
    }
    branches[*branch_id] = {{"from_step", *branch_from}};
  } else if (branch_from) {
    invalid("branch_from_step", *branch_from, "only with is_branch_point true");
  } else if (branch_id && !branches.contains(*branch_id)) {
    invalid("branch_id", *branch_id, "no such branch; start it with is_branch_point true");
  }
  if (branch_id) {
    step["branch_id"] = *branch_id;
  }
  steps.push_back(std::move(step));
  plan["total_steps"] = total;
  return plan;
}

// The plan as the agent presents it: the main line, then each branch; a
// revised step shows its latest revision.
std::string
render(const json& plan)
{
  std::map<int, std::string> text;
  for (const auto& step : plan["steps"]) {
    text[step["step_number"].get<int>()] = step["step"].get<std::string>();
  }
  std::map<int, int> revised_by; // step -> its latest revision
  for (const auto& step : plan["steps"]) {
    if (step.contains("revises")) {
      revised_by[step["revises"].get<int>()] = step["step_number"].get<int>();
    }
  }
  const auto line = [&](const json& step) {
    const int number = step["step_number"].get<int>();
    if (step.contains("revises")) {
      return std::string(); // shown in place of the step it revises
    }
    std::string shown = text[number];
    for (auto it = revised_by.find(number); it != revised_by.end();
         it = revised_by.find(it->second)) {
      shown = text[it->second] + " (revised in step " + std::to_string(it->second) + ")";
    }
    return std::to_string(number) + ". " + shown + "\n";
  };
  std::string out = "## Plan\n\n";
  for (const auto& step : plan["steps"]) {
    if (!step.contains("branch_id")) {
      out += line(step);
    }
  }
  for (const auto& [id, branch] : plan["branches"].items()) {
    out += "\n### Branch " + id + " (after step " + std::to_string(branch["from_step"].get<int>()) +
           ")\n\n";
    for (const auto& step : plan["steps"]) {
      if (step.value("branch_id", "") == id) {
        out += line(step);
      }
    }
  }
  return out;
}

class Planner final : public workflow::StepTool {
public:
  Planner()
      : StepTool(planner_spec())
  {
  }

  CallPlan plan(const PlanInput& input) const override
  {
    (void)record(workflow::previous_state("planner", input.conversations, input.arguments),
                 input.arguments);
    CallPlan plan;
    plan.conversation_id = string_arg(input.arguments, "continuation_id").value_or("");
    return plan;
  }

  ToolResult run(ToolContext& context) const override
  {
    const json& args = context.arguments;
    const json plan =
        record(workflow::previous_state("planner", context.conversations, args), args);
    const std::string id = context.conversations.put_state(
        string_arg(args, "continuation_id").value_or(""), "planner", plan);
    const int number = args.value("step_number", 1);
    const int total = args.value("total_steps", 1);
    const bool more = args.value("next_step_required", true);
    json branches = json::array();
    for (const auto& [branch, unused] : plan["branches"].items()) {
      branches.push_back(branch);
    }
    json reply = {
        {"status", more ? "pause_for_planner" : "planner_complete"},
        {"content_type", more ? "text" : "markdown"},
        {"metadata", {{"tool_name", "planner"}, {"step_number", number}, {"total_steps", total}}},
        {"continuation_offer",
         {{"continuation_id", id}, {"note", "Pass this continuation_id with the next step."}}},
        {"continuation_id", id},
        {"step_number", number},
        {"total_steps", total},
        {"next_step_required", more},
        {"plan_state", {{"steps_recorded", plan["steps"].size()}, {"branches", branches}}}};
    if (more) {
      std::vector<std::string> actions;
      if (total >= kDeepPlanSteps && number <= kReflectionSteps) {
        actions = {"Reflect before writing the next step: is the approach right, and what are "
                   "the alternatives?",
                   "Check dependencies and order: what must happen before what?",
                   "Revise an earlier step (is_step_revision) or branch (is_branch_point) "
                   "where the plan needs it"};
      } else {
        actions = {"Write step " + std::to_string(number + 1) +
                   " as one concrete, checkable "
                   "action"};
      }
      reply["required_actions"] = actions;
      reply["next_step_number"] = number + 1;
      reply["content"] = "Plan step " + std::to_string(number) + " of " + std::to_string(total) +
                         " recorded. Call planner with step_number " + std::to_string(number + 1) +
                         " and continuation_id " + id + ".";
    } else {
      reply["content"] = render(plan);
      reply["next_steps"] = "Present the plan to the user; start with step 1.";
    }
    return ToolSuccess{{reply.dump(-1, ' ', false, json::error_handler_t::replace)}};
  }
};

} // namespace

std::unique_ptr<Tool>
make_planner()
{
  return std::make_unique<Planner>();
}

} // namespace exai::core::tools
