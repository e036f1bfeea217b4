#pragma once

// The workflow tools (analyze, debug, codereview, ...): the calling agent
// investigates in numbered steps, exai keeps the consolidated state in the
// conversation store, and on the final step one expert model reviews the
// evidence. One engine (workflow_tool.cpp) runs every tool; a tool is one
// WorkflowDef in workflow_table.cpp plus its system prompt in
// core/tools/prompts/<prompt>.txt.

#include "core/providers/model_routing.hpp"
#include "core/tools/tool.hpp"

#include <nlohmann/json.hpp>

#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace exai::core::workflow {

// How sure the agent is, in increasing order (the original's scale).
enum class Confidence { exploring, low, medium, high, very_high, almost_certain, certain };

// The names, in order: the schema's enum.
const std::vector<std::string>& confidence_names();
// nullopt for a name not in confidence_names().
std::optional<Confidence> parse_confidence(std::string_view name);

// One workflow tool, as data.
struct WorkflowDef {
  std::string name;        // the tool name; statuses are pause_for_<name>, <name>_complete
  std::string title;       // MCP title
  std::string description; // what it does and when to use it
  std::string prompt;      // the expert's system prompt: core/tools/prompts/<prompt>.txt
  ModelClass model_class = ModelClass::deep; // for `auto` on the expert step
  double default_temperature = 0.2;
  // The expert is skipped when the final step's confidence is at least this.
  Confidence skip_expert_at = Confidence::certain;
  // The tool's own fields (JSON Schema properties) and which of them every
  // step must carry.
  nlohmann::json fields = nlohmann::json::object();
  std::vector<std::string> required;
  // Fields step 1 must carry non-empty (e.g. relevant_files for codereview).
  std::vector<std::string> first_step_required;
  bool hypothesis = true; // has the hypothesis field
  // required_actions: after step 1, after a middle step, and when the next
  // step is the last one.
  std::vector<std::string> first_actions;
  std::vector<std::string> middle_actions;
  std::vector<std::string> last_actions;
  // Evidence the tool gathers itself for the expert (precommit: git's view of
  // the changes), added to the expert's request. Runs on the call thread
  // with the workflow's own fields; throws Error(validation_error) naming a
  // bad field. Empty: none.
  std::function<std::string(ToolContext& context, const nlohmann::json& fields)> evidence;
};

// Helpers for WorkflowDef::fields (JSON Schema properties).
namespace fields {
// A string from `values`, defaulting to `fallback`.
nlohmann::json
choice(std::initializer_list<const char*> values, const char* fallback, const char* description);
// Free text (at most 10,000 characters).
nlohmann::json text(const char* description);
// severity_filter: critical, high, medium, low, all (default).
nlohmann::json severity_filter();
} // namespace fields

// precommit's entry (core/tools/workflow/precommit.cpp: it runs git).
WorkflowDef precommit_workflow();

// Every table-driven workflow tool, by name order.
const std::vector<WorkflowDef>& table();

// The ToolSpec of `def`: the common step fields, its own fields, the model
// fields (model, temperature, thinking_mode), images and continuation_id.
ToolSpec workflow_spec(const WorkflowDef& def);

// The tool that runs `def` (kept by reference: `def` must outlive it).
std::unique_ptr<Tool> make_workflow_tool(const WorkflowDef& def);

} // namespace exai::core::workflow
