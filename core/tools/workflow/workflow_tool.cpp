// The one engine behind every table-driven workflow tool: intermediate steps
// record state and tell the agent what to do next (no model call); the final
// step asks one expert model, with the tool's own system prompt, the
// consolidated findings and the relevant files.

#include "core/calls/conversation_store.hpp"
#include "core/config/config.hpp"
#include "core/files/file_bundle.hpp"
#include "core/files/image_input.hpp"
#include "core/providers/provider_features.hpp"
#include "core/tools/model_call.hpp"
#include "core/tools/prompts.hpp"
#include "core/tools/tool_files.hpp"
#include "core/tools/workflow/step_state.hpp"
#include "core/tools/workflow/workflow.hpp"

namespace exai::core::workflow {

namespace {

using nlohmann::json;

std::string
reply_text(const json& reply)
{
  return reply.dump(-1, ' ', false, json::error_handler_t::replace);
}

// The reply every step shares: the envelope keys (SPEC §2) plus the step's
// position and the consolidated state.
json
base_reply(const WorkflowDef& def,
           std::string status,
           const json& arguments,
           const std::string& id,
           const json& state,
           const Consolidated& consolidated)
{
  const int step_number = arguments.value("step_number", 1);
  const int total_steps = arguments.value("total_steps", 1);
  return {
      {"status", std::move(status)},
      {"content", ""},
      {"content_type", "text"},
      {"metadata",
       {{"tool_name", def.name}, {"step_number", step_number}, {"total_steps", total_steps}}},
      {"continuation_offer",
       {{"continuation_id", id},
        {"note",
         "Pass this continuation_id with every further step of this " + def.name + " workflow."}}},
      {"continuation_id", id},
      {"step_number", step_number},
      {"total_steps", total_steps},
      {"next_step_required", arguments.value("next_step_required", false)},
      {"workflow_state", summary(state, consolidated)}};
}

const std::vector<std::string>&
actions_for(const WorkflowDef& def, int step_number, int total_steps, int recorded)
{
  if (step_number + 1 >= total_steps) {
    return def.last_actions;
  }
  return recorded <= 1 ? def.first_actions : def.middle_actions;
}

std::string
pause_content(const WorkflowDef& def,
              const json& arguments,
              const std::string& id,
              const Consolidated& consolidated,
              const std::vector<std::string>& actions)
{
  const int step_number = arguments.value("step_number", 1);
  const int total_steps = arguments.value("total_steps", 1);
  std::string text =
      def.name + " step " + std::to_string(step_number) + " of " + std::to_string(total_steps) +
      " recorded (confidence " + consolidated.confidence + ", " +
      std::to_string(consolidated.relevant_files.size()) + " relevant files, " +
      std::to_string(consolidated.issues_found.size()) + " issues). Do not call " + def.name +
      " again yet. Before step " + std::to_string(step_number + 1) + ":\n";
  for (std::size_t i = 0; i < actions.size(); ++i) {
    text += std::to_string(i + 1) + ". " + actions[i] + "\n";
  }
  text += "Then call " + def.name + " with step_number " + std::to_string(step_number + 1) +
          ", continuation_id " + id +
          " and what you learned in findings (raise total_steps if you need more; set "
          "next_step_required false on the last step).";
  return text;
}

// What the expert reads: the request, the agent's steps and evidence.
std::string
expert_brief(const WorkflowDef& def, const json& state, const Consolidated& consolidated)
{
  std::string text = "A coding agent finished a " + def.name + " workflow in " +
                     std::to_string(consolidated.steps) +
                     " steps and asks for your expert analysis.\n\n=== REQUEST ===\n" +
                     state.value("initial_request", "") + "\n";
  const json fields = state.value("tool_fields", json::object());
  if (!fields.empty()) {
    text += "\n=== PARAMETERS ===\n";
    for (const auto& [name, value] : fields.items()) {
      text += name + ": " + (value.is_string() ? value.get<std::string>() : value.dump()) + "\n";
    }
  }
  text += "\n=== THE AGENT'S FINDINGS ===\n" + consolidated.findings +
          "\n\nFinal confidence: " + consolidated.confidence + "\n";
  if (!consolidated.hypotheses.empty()) {
    text += "\n=== HYPOTHESES ===\n";
    for (const auto& h : consolidated.hypotheses) {
      text += "- step " + std::to_string(h.value("step_number", 0)) + " (" +
              h.value("confidence", "") + "): " + h.value("hypothesis", "") + "\n";
    }
  }
  if (!consolidated.issues_found.empty()) {
    text += "\n=== ISSUES FOUND ===\n";
    for (const auto& issue : consolidated.issues_found) {
      text += "- [" + issue.value("severity", "?") + "] " + issue.value("description", "");
      if (issue.contains("location")) {
        text += " (" + issue.value("location", "") + ")";
      }
      text += "\n";
    }
  }
  const auto list = [&text](const char* title, const std::vector<std::string>& items) {
    if (!items.empty()) {
      text += std::string("\n=== ") + title + " ===\n";
      for (const auto& item : items) {
        text += "- " + item + "\n";
      }
    }
  };
  list("FILES CHECKED", consolidated.files_checked);
  list("RELEVANT CONTEXT", consolidated.relevant_context);
  return text;
}

class WorkflowTool final : public StepTool {
public:
  explicit WorkflowTool(const WorkflowDef& def)
      : StepTool(workflow_spec(def))
      , def_(def)
  {
  }

  CallPlan plan(const PlanInput& input) const override
  {
    // Checked here so a bad step is refused before it waits for capacity;
    // run() checks again under the conversation's permit.
    const json previous = previous_state(def_.name, input.conversations, input.arguments);
    const json state = record_step(def_, previous, input.arguments);
    if (!wants_expert(def_, input.arguments)) {
      CallPlan plan;
      plan.conversation_id = string_arg(input.arguments, "continuation_id").value_or("");
      return plan;
    }
    // The expert sees the images of every step, so route for all of them.
    json routed = input.arguments;
    routed["images"] = consolidate(state).images;
    return plan_model(PlanInput{routed, input.providers, input.conversations}, def_.model_class);
  }

  ToolResult run(ToolContext& context) const override
  {
    const json& args = context.arguments;
    const json previous = previous_state(def_.name, context.conversations, args);
    const json state = record_step(def_, previous, args);
    const Consolidated consolidated = consolidate(state);
    const std::string given_id = string_arg(args, "continuation_id").value_or("");

    if (bool_arg(args, "next_step_required").value_or(true)) {
      const std::string id = context.conversations.put_state(given_id, def_.name, state);
      const int step_number = args.value("step_number", 1);
      const auto& actions =
          actions_for(def_, step_number, args.value("total_steps", 1), consolidated.steps);
      json reply = base_reply(def_, "pause_for_" + def_.name, args, id, state, consolidated);
      reply["required_actions"] = actions;
      reply["next_step_number"] = step_number + 1;
      reply["content"] = pause_content(def_, args, id, consolidated, actions);
      return ToolSuccess{{reply_text(reply)}};
    }
    if (!wants_expert(def_, args)) {
      const std::string id = context.conversations.put_state(given_id, def_.name, state);
      const std::string reason = bool_arg(args, "use_assistant_model").value_or(true)
                                     ? "confidence is " + consolidated.confidence
                                     : "use_assistant_model is false";
      json reply = base_reply(def_, "local_work_complete", args, id, state, consolidated);
      reply["expert_analysis"] = {{"status", "skipped"}, {"reason", reason}};
      reply["content"] = def_.name + " complete after " + std::to_string(consolidated.steps) +
                         " steps without expert analysis (" + reason +
                         "). Present your findings to the user.";
      return ToolSuccess{{reply_text(reply)}};
    }
    return expert_step(context, state, consolidated, given_id);
  }

private:
  ToolResult expert_step(ToolContext& context,
                         const json& state,
                         const Consolidated& consolidated,
                         const std::string& given_id) const
  {
    const json& args = context.arguments;
    const std::string system_prompt(prompts::get(def_.prompt));
    std::string brief = expert_brief(def_, state, consolidated);
    if (def_.evidence) {
      brief += def_.evidence(context, state.value("tool_fields", json::object()));
    }
    FileBundle bundle;
    if (!consolidated.relevant_files.empty()) {
      FileRequest request;
      request.paths = consolidated.relevant_files;
      request.field = "relevant_files";
      request.token_budget =
          file_token_budget(context, estimate_tokens(system_prompt) + estimate_tokens(brief));
      request.max_file_bytes = context.config.file_max_bytes;
      request.stop = context.stop;
      bundle = collect_files(context.file_roots, request);
    }
    std::vector<ChatImage> images;
    for (std::size_t i = 0; i < consolidated.images.size(); ++i) {
      images.push_back(load_image(context.file_roots,
                                  consolidated.images[i],
                                  "images[" + std::to_string(i) + "]",
                                  context.config.image_max_bytes));
    }
    std::string text = brief;
    if (!bundle.text.empty()) {
      text += "\n=== RELEVANT FILES ===\n" + bundle.text + "\n=== END RELEVANT FILES ===\n";
    }
    text += skipped_note(bundle.skipped);
    ChatMessage user("user", text);
    user.images = images;

    const auto thinking = parse_thinking_mode(string_arg(args, "thinking_mode").value_or(""));
    const double temperature =
        number_arg(args, "temperature", 0.0, 1.0).value_or(def_.default_temperature);
    context.progress("calling_expert_analysis: " + context.plan.model + " reviews " +
                     std::to_string(consolidated.steps) + " steps and " +
                     std::to_string(bundle.embedded.size()) + " files");
    ModelCallInfo info;
    const RequestBuilder build = [&](const CallPlan& plan, ModelCallInfo& call_info) {
      ChatRequest request = model_request(context, plan, temperature);
      request.messages.emplace_back("system", system_prompt);
      request.messages.push_back(user);
      const ModelInfo* model = context.providers.catalog().find(plan.model);
      if (thinking && model != nullptr) {
        if (auto note = apply_thinking(request, plan.provider, *model, *thinking); !note.empty()) {
          call_info.notes.push_back(std::move(note));
        }
      }
      return request;
    };
    ChatOutcome outcome = call_model(context, build, info);
    if (auto* failure = std::get_if<ChatFailure>(&outcome)) {
      // The state is not saved: the agent may send the final step again.
      return tool_failure(*failure);
    }
    const auto& reply = std::get<ChatReply>(outcome);

    const std::string id = context.conversations.put_state(given_id, def_.name, state);
    // The exchange becomes a turn, so chat can continue the discussion with
    // the expert under the same continuation_id.
    const auto [thread, turns] = context.conversations.record_turn(
        id,
        remembered_message(user, images.size()),
        ChatMessage("assistant", reply.content),
        TurnInfo{def_.name, context.plan.provider, context.plan.model, bundle.embedded});

    json out = base_reply(def_, def_.name + "_complete", args, thread, state, consolidated);
    json metadata = reply_metadata(context.plan, reply);
    metadata.update(out["metadata"]);
    if (!consolidated.relevant_files.empty()) {
      metadata["files"] = files_metadata(bundle);
    }
    if (!info.notes.empty()) {
      metadata["notes"] = info.notes;
    }
    out["metadata"] = std::move(metadata);
    out["content"] = reply.content;
    out["content_type"] = "markdown";
    out["expert_analysis"] = {{"status", "analysis_complete"},
                              {"model", context.plan.model},
                              {"provider", context.plan.provider},
                              {"content", reply.content}};
    out["continuation_offer"]["remaining_turns"] =
        std::max(0, context.conversations.max_turns() - turns);
    out["next_steps"] = "Weigh the expert analysis against your own findings, verify each point "
                        "in the code before acting on it, then present the outcome to the user.";
    return ToolSuccess{{reply_text(out)}};
  }

  const WorkflowDef& def_;
};

} // namespace

std::unique_ptr<Tool>
make_workflow_tool(const WorkflowDef& def)
{
  return std::make_unique<WorkflowTool>(def);
}

} // namespace exai::core::workflow
