#pragma once

// A workflow's state between calls: which steps were recorded, with their
// findings, files, issues and confidence. Kept as JSON in the conversation
// store (Conversation::state) under the workflow's continuation_id. Pure
// functions: the tool reads the state, records the step, writes it back.

#include "core/tools/workflow/workflow.hpp"

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace exai::core {
class ConversationStore;
}

namespace exai::core::workflow {

// A tool whose calls are the steps of one piece of work kept in the
// conversation store (the workflow tools, planner, consensus). Never reused:
// every call advances its own thread, and sharing one answer would hand two
// agents one workflow.
class StepTool : public Tool {
public:
  explicit StepTool(ToolSpec spec)
      : spec_(std::move(spec))
  {
  }
  const ToolSpec& spec() const final { return spec_; }
  bool reusable() const final { return false; }

private:
  ToolSpec spec_;
};

// Throws Error(validation_error) naming the field, the value and the rule.
[[noreturn]] void
invalid(std::string_view field, const nlohmann::json& value, std::string_view rule);

// The state the call continues: null when it carries no continuation_id.
// Throws Error(validation_error) on `continuation_id` when the thread is
// unknown or expired, or holds no workflow of `tool`.
nlohmann::json
previous_state(std::string_view tool, ConversationStore& store, const nlohmann::json& arguments);

// The state after this step, checked against the numbering rules: a new
// workflow starts at step 1; each later step is the next number; with
// backtrack_from_step k (a recorded step), steps k and later are discarded
// and this step may be numbered from k to the next number; step_number never
// exceeds total_steps; the first step carries def.first_step_required.
// Throws Error(validation_error) naming the field and the rule.
nlohmann::json record_step(const WorkflowDef& def,
                           const nlohmann::json& previous,
                           const nlohmann::json& arguments);

// Everything the recorded steps say, merged: lists keep first-seen order
// without duplicates; the confidence is the latest step's.
struct Consolidated {
  int steps = 0;
  std::string findings; // "Step N: ..." blocks, in order
  std::vector<std::string> files_checked;
  std::vector<std::string> relevant_files;
  std::vector<std::string> relevant_context;
  std::vector<std::string> images;
  nlohmann::json issues_found = nlohmann::json::array(); // {severity, description, ...}
  nlohmann::json hypotheses = nlohmann::json::array();   // {step_number, hypothesis, confidence}
  std::string confidence;
};

Consolidated consolidate(const nlohmann::json& state);

// The consolidated state as a reply shows it (everything but the findings
// text, which the agent wrote itself).
nlohmann::json summary(const nlohmann::json& state, const Consolidated& consolidated);

// The step's confidence (default low).
Confidence step_confidence(const nlohmann::json& arguments);

// Does this call end with the expert call? Only a final step
// (next_step_required false) with use_assistant_model not false and a
// confidence below def.skip_expert_at.
bool wants_expert(const WorkflowDef& def, const nlohmann::json& arguments);

} // namespace exai::core::workflow
