#include "core/tools/workflow/step_state.hpp"

#include "core/calls/conversation_store.hpp"
#include "core/error.hpp"
#include "core/files/file_roots.hpp"
#include "core/util/text.hpp"

#include <algorithm>
#include <array>

namespace exai::core::workflow {

namespace {

using nlohmann::json;

constexpr std::size_t kShownValueBytes = 80;

// The fields of one step that the state keeps.
constexpr std::array<const char*, 5> kListFields = {
    "files_checked", "relevant_files", "relevant_context", "issues_found", "images"};

void
add_unique(std::vector<std::string>& list, const json& values)
{
  if (!values.is_array()) {
    return;
  }
  for (const auto& value : values) {
    if (value.is_string() &&
        std::find(list.begin(), list.end(), value.get<std::string>()) == list.end()) {
      list.push_back(value.get<std::string>());
    }
  }
}

bool
present(const json& arguments, const std::string& name)
{
  const auto it = arguments.find(name);
  if (it == arguments.end() || it->is_null()) {
    return false;
  }
  if (it->is_string() || it->is_array() || it->is_object()) {
    return !it->empty();
  }
  return true;
}

} // namespace

const std::vector<std::string>&
confidence_names()
{
  static const std::vector<std::string> names = {
      "exploring", "low", "medium", "high", "very_high", "almost_certain", "certain"};
  return names;
}

std::optional<Confidence>
parse_confidence(std::string_view name)
{
  const auto& names = confidence_names();
  const auto it = std::find(names.begin(), names.end(), name);
  if (it == names.end()) {
    return std::nullopt;
  }
  return static_cast<Confidence>(it - names.begin());
}

void
invalid(std::string_view field, const json& value, std::string_view rule)
{
  const std::string shown =
      value.is_null()
          ? std::string("null")
          : printable(value.dump(-1, ' ', false, json::error_handler_t::replace), kShownValueBytes);
  throw Error(Errc::validation_error,
              "argument '" + std::string(field) + "' = " + shown +
                  " is invalid: " + std::string(rule),
              {{"field", field}, {"value", shown}, {"rule", rule}});
}

json
previous_state(std::string_view tool, ConversationStore& store, const json& arguments)
{
  const std::string id = string_arg(arguments, "continuation_id").value_or("");
  if (id.empty()) {
    return nullptr;
  }
  const auto thread = store.find(id);
  if (!thread) {
    invalid("continuation_id",
            id,
            "no such workflow (unknown or expired); start again at step 1 without "
            "continuation_id");
  }
  if (!thread->state.is_object() || thread->state.value("tool", "") != tool) {
    const std::string owner =
        thread->state.is_object() ? thread->state.value("tool", "") : thread->tool;
    invalid("continuation_id",
            id,
            "belongs to " + (owner.empty() ? std::string("another conversation") : owner) +
                ", not to a " + std::string(tool) + " workflow; start " + std::string(tool) +
                " at step 1 without continuation_id");
  }
  return thread->state;
}

json
record_step(const WorkflowDef& def, const json& previous, const json& arguments)
{
  const int step_number = int_arg(arguments, "step_number", 1, 1 << 20).value_or(1);
  const int total_steps = int_arg(arguments, "total_steps", 1, 1 << 20).value_or(1);
  const auto backtrack = int_arg(arguments, "backtrack_from_step", 1, 1 << 20);
  if (step_number > total_steps) {
    invalid("step_number",
            step_number,
            "must be at most total_steps (" + std::to_string(total_steps) +
                "); raise total_steps when you need more steps");
  }
  json state = previous.is_object() ? previous : json{{"tool", def.name}, {"steps", json::array()}};
  json& steps = state["steps"];
  if (steps.empty()) {
    if (step_number != 1) {
      invalid("step_number",
              step_number,
              "a " + def.name +
                  " workflow starts at step 1; later steps need the continuation_id step 1 "
                  "returned");
    }
    if (backtrack) {
      invalid("backtrack_from_step", *backtrack, "there is no recorded step to go back to");
    }
  } else {
    const int last = steps.back().at("step_number").get<int>();
    if (backtrack) {
      if (*backtrack > last) {
        invalid("backtrack_from_step",
                *backtrack,
                "must name a recorded step, from 1 to " + std::to_string(last));
      }
      if (step_number < *backtrack || step_number > last + 1) {
        invalid("step_number",
                step_number,
                "after backtrack_from_step " + std::to_string(*backtrack) + " it must be from " +
                    std::to_string(*backtrack) + " to " + std::to_string(last + 1));
      }
      json kept = json::array();
      for (auto& step : steps) {
        if (step.at("step_number").get<int>() < *backtrack) {
          kept.push_back(std::move(step));
        }
      }
      steps = std::move(kept);
      state["backtracks"] = state.value("backtracks", 0) + 1;
    } else if (step_number != last + 1) {
      invalid("step_number",
              step_number,
              "must be " + std::to_string(last + 1) +
                  ", the next step of this workflow (use backtrack_from_step to redo an "
                  "earlier step)");
    }
  }
  if (steps.empty()) {
    for (const auto& field : def.first_step_required) {
      if (!present(arguments, field)) {
        invalid(field,
                arguments.contains(field) ? arguments.at(field) : json(nullptr),
                "required (non-empty) at step 1 of " + def.name);
      }
    }
    state["initial_request"] = arguments.value("step", "");
  }

  // Paths are checked fully (roots, symlinks) when the expert step reads
  // them; the rules that need no file system are checked at the step that
  // names them, so the agent hears of a bad path at once.
  if (const auto it = arguments.find("relevant_files"); it != arguments.end() && it->is_array()) {
    for (std::size_t i = 0; i < it->size(); ++i) {
      const auto& path = (*it)[i];
      if (const std::string rule = FileRoots::lexical_problem(path.get<std::string>());
          !rule.empty()) {
        invalid("relevant_files[" + std::to_string(i) + "]", path, rule);
      }
    }
  }

  json step = {{"step_number", step_number},
               {"step", arguments.value("step", "")},
               {"findings", arguments.value("findings", "")},
               {"confidence", arguments.value("confidence", "low")}};
  for (const char* field : kListFields) {
    step[field] = arguments.contains(field) && arguments.at(field).is_array() ? arguments.at(field)
                                                                              : json::array();
  }
  if (const auto hypothesis = string_arg(arguments, "hypothesis");
      hypothesis && !hypothesis->empty()) {
    step["hypothesis"] = *hypothesis;
  }
  steps.push_back(std::move(step));
  state["total_steps"] = total_steps;
  json& fields = state["tool_fields"];
  if (!fields.is_object()) {
    fields = json::object();
  }
  for (const auto& [name, schema] : def.fields.items()) {
    if (const auto it = arguments.find(name); it != arguments.end() && !it->is_null()) {
      fields[name] = *it;
    }
  }
  return state;
}

Consolidated
consolidate(const json& state)
{
  Consolidated out;
  for (const auto& step : state.value("steps", json::array())) {
    ++out.steps;
    const int number = step.value("step_number", 0);
    out.findings += (out.findings.empty() ? "" : "\n\n") + std::string("Step ") +
                    std::to_string(number) + ": " + step.value("findings", "");
    add_unique(out.files_checked, step.value("files_checked", json::array()));
    add_unique(out.relevant_files, step.value("relevant_files", json::array()));
    add_unique(out.relevant_context, step.value("relevant_context", json::array()));
    add_unique(out.images, step.value("images", json::array()));
    for (const auto& issue : step.value("issues_found", json::array())) {
      if (std::find(out.issues_found.begin(), out.issues_found.end(), issue) ==
          out.issues_found.end()) {
        out.issues_found.push_back(issue);
      }
    }
    if (step.contains("hypothesis")) {
      out.hypotheses.push_back({{"step_number", number},
                                {"hypothesis", step["hypothesis"]},
                                {"confidence", step.value("confidence", "low")}});
    }
    out.confidence = step.value("confidence", "low");
  }
  return out;
}

json
summary(const json& state, const Consolidated& consolidated)
{
  json numbers = json::array();
  for (const auto& step : state.value("steps", json::array())) {
    numbers.push_back(step.value("step_number", 0));
  }
  json out = {{"steps_recorded", numbers},
              {"confidence", consolidated.confidence},
              {"files_checked", consolidated.files_checked},
              {"relevant_files", consolidated.relevant_files},
              {"relevant_context", consolidated.relevant_context},
              {"issues_found", consolidated.issues_found},
              {"hypotheses", consolidated.hypotheses},
              {"images", consolidated.images.size()}};
  if (const int backtracks = state.value("backtracks", 0); backtracks > 0) {
    out["backtracks"] = backtracks;
  }
  return out;
}

Confidence
step_confidence(const json& arguments)
{
  return parse_confidence(string_arg(arguments, "confidence").value_or("low"))
      .value_or(Confidence::low);
}

bool
wants_expert(const WorkflowDef& def, const json& arguments)
{
  return !bool_arg(arguments, "next_step_required").value_or(true) &&
         bool_arg(arguments, "use_assistant_model").value_or(true) &&
         step_confidence(arguments) < def.skip_expert_at;
}

} // namespace exai::core::workflow
