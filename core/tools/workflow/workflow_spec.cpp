// The argument fields every workflow tool shares, as JSON Schema, plus the
// tool's own (WorkflowDef::fields).

#include "core/tools/workflow/workflow.hpp"

namespace exai::core::workflow {

namespace {

using nlohmann::json;

constexpr int kMaxSteps = 100;
constexpr std::size_t kMaxFindingsChars = 50000;
constexpr std::size_t kMaxHypothesisChars = 10000;
constexpr std::size_t kMaxListItems = 1000;

json
string_list(const std::string& description, std::size_t max_items = kMaxListItems)
{
  return {{"type", "array"},
          {"items", {{"type", "string"}, {"minLength", 1}, {"maxLength", 4096}}},
          {"maxItems", max_items},
          {"description", description}};
}

json
common_fields()
{
  return {
      {"step",
       {{"type", "string"},
        {"minLength", 1},
        {"maxLength", kMaxPromptChars},
        {"description",
         "What this step investigates and why. Step 1 states the task (the expert reads it as "
         "the request); later steps say what you are checking now."}}},
      {"step_number",
       {{"type", "integer"},
        {"minimum", 1},
        {"maximum", kMaxSteps},
        {"description",
         "This step's number: 1 starts a workflow; each later step is the next number"}}},
      {"total_steps",
       {{"type", "integer"},
        {"minimum", 1},
        {"maximum", kMaxSteps},
        {"description",
         "Your current estimate of the steps needed (at least step_number; adjust as you go)"}}},
      {"next_step_required",
       {{"type", "boolean"},
        {"description",
         "true: more steps follow (no model call; exai records the step and answers with the "
         "required actions). false: this is the final step (the expert analysis runs unless "
         "use_assistant_model is false or confidence is certain)"}}},
      {"findings",
       {{"type", "string"},
        {"minLength", 1},
        {"maxLength", kMaxFindingsChars},
        {"description",
         "What you found in this step: facts, code paths, evidence, dead ends. Be specific; "
         "the expert sees only what you write here and the relevant files"}}},
      {"files_checked",
       string_list("Absolute paths of every file you examined in this step, relevant or not")},
      {"relevant_files",
       string_list("Absolute paths (under EXAI_FILE_ROOTS) of the files that matter; their "
                   "contents go to the expert on the final step, with line numbers",
                   kMaxFilesPerCall)},
      {"relevant_context",
       string_list("Functions, classes or methods central to the task, e.g. "
                   "'Engine::submit'")},
      {"issues_found",
       {{"type", "array"},
        {"maxItems", kMaxListItems},
        {"items",
         {{"type", "object"},
          {"properties",
           {{"severity", {{"type", "string"}, {"enum", {"critical", "high", "medium", "low"}}}},
            {"description", {{"type", "string"}, {"minLength", 1}, {"maxLength", 4096}}},
            {"location",
             {{"type", "string"}, {"maxLength", 4096}, {"description", "file:line or symbol"}}},
            {"type",
             {{"type", "string"},
              {"maxLength", 100},
              {"description", "kind of issue, e.g. a refactoring category"}}}}},
          {"required", {"severity", "description"}},
          {"additionalProperties", false}}},
        {"description", "Issues found so far, each with severity and description"}}},
      {"confidence",
       {{"type", "string"},
        {"enum", confidence_names()},
        {"default", "low"},
        {"description",
         "How sure you are of your findings. 'certain' on the final step skips the expert "
         "analysis: use it only when nothing is left to verify"}}},
      {"backtrack_from_step",
       {{"type", "integer"},
        {"minimum", 1},
        {"maximum", kMaxSteps},
        {"description",
         "Discard the recorded steps from this number on (a dead end) and continue from "
         "there; this step may then be numbered from it to the next number"}}},
      {"use_assistant_model",
       {{"type", "boolean"},
        {"default", true},
        {"description", "false: finish without the expert model (no model call at all)"}}},
  };
}

} // namespace

namespace fields {

json
choice(std::initializer_list<const char*> values, const char* fallback, const char* description)
{
  json list = json::array();
  for (const char* value : values) {
    list.push_back(value);
  }
  return {{"type", "string"}, {"enum", list}, {"default", fallback}, {"description", description}};
}

json
text(const char* description)
{
  return {{"type", "string"}, {"maxLength", 10000}, {"description", description}};
}

json
severity_filter()
{
  return choice(
      {"critical", "high", "medium", "low", "all"}, "all", "Lowest severity worth reporting");
}

} // namespace fields

ToolSpec
workflow_spec(const WorkflowDef& def)
{
  ToolSpec spec;
  spec.name = def.name;
  spec.title = def.title;
  spec.description = def.description;
  spec.model_class = def.model_class;
  spec.default_temperature = def.default_temperature;
  spec.common = field::kModel | field::kTemperature | field::kThinkingMode |
                field::kContinuationId | field::kImages;
  spec.properties = common_fields();
  if (def.hypothesis) {
    spec.properties["hypothesis"] = {
        {"type", "string"},
        {"maxLength", kMaxHypothesisChars},
        {"description", "Your current theory, revised as evidence comes in"}};
  }
  spec.properties.update(def.fields);
  spec.required = {"step", "step_number", "total_steps", "next_step_required", "findings"};
  spec.required.insert(spec.required.end(), def.required.begin(), def.required.end());
  return spec;
}

} // namespace exai::core::workflow
