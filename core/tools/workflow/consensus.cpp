// consensus: several models give their opinion on one proposal, each from a
// stance (for, against, neutral), one model per step — or, with
// consult_all_at_once, all of them concurrently in step 1. A model that fails
// is reported, not fatal. The agent synthesises the opinions.

#include "core/calls/conversation_store.hpp"
#include "core/config/config.hpp"
#include "core/files/file_bundle.hpp"
#include "core/files/image_input.hpp"
#include "core/tools/builtin.hpp"
#include "core/tools/prompts.hpp"
#include "core/tools/tool_files.hpp"
#include "core/tools/workflow/step_state.hpp"

#include <atomic>
#include <map>
#include <thread>

namespace exai::core::tools {

namespace {

using nlohmann::json;
using workflow::invalid;

constexpr int kMaxModels = 8;
constexpr std::size_t kMaxFindingsChars = 50000;

ToolSpec
consensus_spec()
{
  ToolSpec spec;
  spec.name = "consensus";
  spec.title = "Consensus of several models";
  spec.description =
      "Asks several models for their opinion on one proposal, each from a stance (for, "
      "against, neutral), so that you can weigh independent views. Step 1 carries the "
      "proposal, your own analysis and the models and consults the first model; each "
      "following step consults the next one. A model that fails is reported, not fatal. "
      "After the last model you synthesise the opinions.";
  spec.model_class = ModelClass::deep;
  spec.default_temperature = 0.2;
  spec.common = field::kTemperature | field::kContinuationId | field::kImages;
  const json step_number = {{"type", "integer"}, {"minimum", 1}, {"maximum", kMaxModels}};
  spec.properties = {
      {"step",
       {{"type", "string"},
        {"minLength", 1},
        {"maxLength", kMaxPromptChars},
        {"description",
         "Step 1: the proposal or question, complete and neutral (every model reads it). "
         "Later steps: what you are doing now"}}},
      {"step_number", step_number},
      {"total_steps", step_number},
      {"next_step_required",
       {{"type", "boolean"},
        {"description",
         "Whether you expect more steps; exai decides from the models (one step each)"}}},
      {"findings",
       {{"type", "string"},
        {"maxLength", kMaxFindingsChars},
        {"description",
         "Step 1 (required): your own analysis of the proposal. Later steps: what the last "
         "opinion changed in your view"}}},
      {"models",
       {{"type", "array"},
        {"minItems", 1},
        {"maxItems", kMaxModels},
        {"items",
         {{"type", "object"},
          {"properties",
           {{"model",
             {{"type", "string"},
              {"minLength", 1},
              {"maxLength", 100},
              {"description", "A model name or alias (see listmodels), or auto"}}},
            {"stance",
             {{"type", "string"}, {"enum", {"for", "against", "neutral"}}, {"default", "neutral"}}},
            {"stance_prompt",
             {{"type", "string"},
              {"maxLength", 10000},
              {"description", "Replaces exai's instructions for this stance"}}}}},
          {"required", {"model"}},
          {"additionalProperties", false}}},
        {"description",
         "Step 1: the models to consult, each with a stance; the same model may appear with "
         "different stances"}}},
      {"relevant_files",
       {{"type", "array"},
        {"items", {{"type", "string"}, {"minLength", 1}, {"maxLength", 4096}}},
        {"maxItems", kMaxFilesPerCall},
        {"description",
         "Absolute paths (under EXAI_FILE_ROOTS) every model should read with the proposal"}}},
      {"consult_all_at_once",
       {{"type", "boolean"},
        {"default", false},
        {"description",
         "Step 1 only: consult every model at once — concurrently, never more at a time than "
         "each provider's capacity — and get all opinions in one reply"}}},
      {"current_model_index",
       {{"type", "integer"},
        {"minimum", 0},
        {"description", "Accepted for compatibility; exai keeps the position itself"}}}};
  spec.properties["step_number"]["description"] = "1 starts; each later step is the next number";
  spec.properties["total_steps"]["description"] =
      "Your estimate; exai sets it to the number of models";
  spec.required = {"step", "step_number", "total_steps", "next_step_required"};
  return spec;
}

// The consensus after this step's checks (responses are added by run()).
json
record(const json& previous, const json& args, const ProviderRegistry& providers)
{
  const int number = int_arg(args, "step_number", 1, kMaxModels).value_or(1);
  if (previous.is_object()) {
    const int last = previous.value("last_step", 0);
    const int total = previous.value("total_steps", 0);
    if (last >= total) {
      invalid("continuation_id",
              string_arg(args, "continuation_id").value_or(""),
              "this consensus is complete (every model was consulted); start a new one");
    }
    if (number != last + 1) {
      invalid(
          "step_number", number, "must be " + std::to_string(last + 1) + ", the next model's step");
    }
    if (bool_arg(args, "consult_all_at_once").value_or(false)) {
      invalid("consult_all_at_once", true, "only step 1 can consult every model at once");
    }
    json state = previous;
    if (const auto notes = string_arg(args, "findings"); notes && !notes->empty()) {
      state["notes"].push_back({{"step_number", number}, {"findings", *notes}});
    }
    return state;
  }
  if (number != 1) {
    invalid("step_number",
            number,
            "a consensus starts at step 1; later steps need the continuation_id step 1 returned");
  }
  const auto analysis = string_arg(args, "findings");
  if (!analysis || analysis->empty()) {
    invalid("findings", nullptr, "required at step 1: your own analysis of the proposal");
  }
  const auto it = args.find("models");
  if (it == args.end() || !it->is_array() || it->empty()) {
    invalid("models", nullptr, "required at step 1: at least one model with its stance");
  }
  RouteNeeds needs;
  needs.model_class = ModelClass::deep;
  needs.vision = !strings_arg(args, "images").empty();
  json models = json::array();
  for (std::size_t i = 0; i < it->size(); ++i) {
    const json& entry = (*it)[i];
    const std::string field = "models[" + std::to_string(i) + "]";
    const std::string name = entry.value("model", "");
    ModelChoice choice;
    try {
      choice = choose_model(providers, name, needs);
    } catch (const Error& e) {
      invalid(field + ".model", name, e.what());
    }
    const std::string stance = entry.value("stance", "neutral");
    for (std::size_t j = 0; j < models.size(); ++j) {
      if (models[j]["model"] == choice.primary.model && models[j]["stance"] == stance) {
        invalid(field,
                entry,
                "repeats models[" + std::to_string(j) + "] (" + choice.primary.model + ", " +
                    stance + "); each model and stance may appear once");
      }
    }
    json model = {{"model", choice.primary.model},
                  {"provider", choice.primary.provider},
                  {"stance", stance},
                  {"requested", name}};
    if (entry.contains("stance_prompt") && entry["stance_prompt"].is_string()) {
      model["stance_prompt"] = entry["stance_prompt"];
    }
    models.push_back(std::move(model));
  }
  const int total = static_cast<int>(models.size());
  return {{"tool", "consensus"},
          {"proposal", args.value("step", "")},
          {"analysis", *analysis},
          {"models", std::move(models)},
          {"total_steps", total},
          {"last_step", 0},
          {"relevant_files", args.value("relevant_files", json::array())},
          {"images", args.value("images", json::array())},
          {"responses", json::array()},
          {"notes", json::array()},
          {"all_at_once", bool_arg(args, "consult_all_at_once").value_or(false)}};
}

// The model whose provider permit the call takes: the consulted one, or, all
// at once, the one with the smallest context window (the files sent to every
// model must fit it).
std::size_t
planned_model(const json& state, const ModelCatalog& catalog)
{
  if (!state.value("all_at_once", false)) {
    return static_cast<std::size_t>(state.value("last_step", 0));
  }
  std::size_t chosen = 0;
  int smallest = 0;
  const json& models = state["models"];
  for (std::size_t i = 0; i < models.size(); ++i) {
    const ModelInfo* info = catalog.find(models[i]["model"].get<std::string>());
    const int window = info != nullptr ? info->context_window : 0;
    if (i == 0 || window < smallest) {
      chosen = i;
      smallest = window;
    }
  }
  return chosen;
}

std::string
system_prompt(const json& model)
{
  std::string stance_text;
  if (model.contains("stance_prompt")) {
    stance_text = model["stance_prompt"].get<std::string>();
  } else {
    stance_text =
        std::string(prompts::get("consensus_" + model.value("stance", std::string("neutral"))));
  }
  return std::string(prompts::get("consensus")) + "\n" + stance_text;
}

class Consensus final : public workflow::StepTool {
public:
  Consensus()
      : StepTool(consensus_spec())
  {
  }

  CallPlan plan(const PlanInput& input) const override
  {
    const json state =
        record(workflow::previous_state("consensus", input.conversations, input.arguments),
               input.arguments,
               input.providers);
    // The call's provider permit is the consulted model's.
    const json& first = state["models"][planned_model(state, input.providers.catalog())];
    CallPlan plan;
    plan.conversation_id = string_arg(input.arguments, "continuation_id").value_or("");
    plan.provider = first["provider"];
    plan.model = first["model"];
    plan.model_reason = "consensus model " + first.value("requested", std::string());
    return plan;
  }

  ToolResult run(ToolContext& context) const override
  {
    const json& args = context.arguments;
    json state = record(workflow::previous_state("consensus", context.conversations, args),
                        args,
                        context.providers);
    const json& model = state["models"][planned_model(state, context.providers.catalog())];
    const std::string user = proposal_message(context, state, model);
    std::vector<ChatImage> images;
    const auto specs = state["images"];
    for (std::size_t i = 0; i < specs.size(); ++i) {
      images.push_back(load_image(context.file_roots,
                                  specs[i].get<std::string>(),
                                  "images[" + std::to_string(i) + "]",
                                  context.config.image_max_bytes));
    }
    const double temperature =
        number_arg(args, "temperature", 0.0, 1.0).value_or(spec().default_temperature);
    if (state.value("all_at_once", false)) {
      state["responses"] = consult_all(context, state["models"], user, images, temperature);
      state["last_step"] = state["total_steps"];
    } else {
      context.progress("consulting " + model["model"].get<std::string>() + " (" +
                       model["stance"].get<std::string>() + ")");
      state["responses"].push_back(consult(context, model, user, images, temperature));
      state["last_step"] = state.value("last_step", 0) + 1;
    }
    const std::string id = context.conversations.put_state(
        string_arg(args, "continuation_id").value_or(""), "consensus", state);
    return ToolSuccess{{reply(state, id)}};
  }

private:
  static std::string proposal_message(ToolContext& context, const json& state, const json& model)
  {
    std::string text = "=== PROPOSAL ===\n" + state.value("proposal", std::string()) + "\n";
    std::vector<std::string> files;
    for (const auto& path : state["relevant_files"]) {
      files.push_back(path.get<std::string>());
    }
    if (files.empty()) {
      return text;
    }
    FileRequest request;
    request.paths = files;
    request.field = "relevant_files";
    request.token_budget =
        file_token_budget(context, estimate_tokens(text) + estimate_tokens(system_prompt(model)));
    request.max_file_bytes = context.config.file_max_bytes;
    request.stop = context.stop;
    const FileBundle bundle = collect_files(context.file_roots, request);
    if (!bundle.text.empty()) {
      text += "\n=== CONTEXT FILES ===\n" + bundle.text + "\n=== END CONTEXT FILES ===\n";
    }
    return text + skipped_note(bundle.skipped);
  }

  static json failed(const json& model, std::string_view code, const std::string& message)
  {
    return {{"model", model["model"]},
            {"provider", model["provider"]},
            {"stance", model["stance"]},
            {"status", "error"},
            {"error", {{"code", code}, {"message", message}}}};
  }

  static json consult(ToolContext& context,
                      const json& model,
                      const std::string& user,
                      const std::vector<ChatImage>& images,
                      double temperature)
  {
    ChatRequest request;
    request.model = model["model"];
    request.deadline = context.deadline;
    request.temperature = temperature;
    request.messages.emplace_back("system", system_prompt(model));
    ChatMessage message("user", user);
    message.images = images;
    request.messages.push_back(std::move(message));
    const ChatOutcome outcome =
        context.chat.complete(model["provider"].get<std::string>(), request, context.stop);
    if (const auto* failure = std::get_if<ChatFailure>(&outcome)) {
      return failed(model, protocol_code(failure->code), failure->message);
    }
    const auto& answer = std::get<ChatReply>(outcome);
    return {{"model", model["model"]},
            {"provider", model["provider"]},
            {"stance", model["stance"]},
            {"status", "success"},
            {"verdict", answer.content},
            {"usage", answer.usage.is_null() ? json::object() : answer.usage}};
  }

  // Every model at once. Per provider, lanes run its models one after the
  // other: the call's own permit is a lane on plan.provider, each other lane
  // holds an extra provider permit (the first one of another provider waited
  // for until the acquire deadline, further ones only if free right away), so
  // a provider never serves more requests than its capacity and every model
  // still gets its turn.
  static json consult_all(ToolContext& context,
                          const json& models,
                          const std::string& user,
                          const std::vector<ChatImage>& images,
                          double temperature)
  {
    struct Group {
      std::vector<std::size_t> models;
      std::atomic<std::size_t> next{0};
    };
    std::map<std::string, Group> groups;
    for (std::size_t i = 0; i < models.size(); ++i) {
      groups[models[i]["provider"].get<std::string>()].models.push_back(i);
    }
    std::vector<json> answers(models.size());
    const auto wait_until = std::min(
        context.deadline, std::chrono::steady_clock::now() + context.config.acquire_timeout);
    context.progress("consulting " + std::to_string(models.size()) + " models at once");
    {
      std::vector<std::jthread> lanes;
      for (auto& [provider, group] : groups) {
        std::vector<std::optional<Permit>> permits;
        if (provider == context.plan.provider) {
          permits.emplace_back(); // the call's own permit
        } else if (auto first = context.extra_permit(provider, wait_until)) {
          permits.emplace_back(std::move(first));
        } else {
          for (const std::size_t i : group.models) {
            answers[i] = failed(models[i],
                                "OVER_CAPACITY",
                                provider + " had no free capacity before the acquire deadline");
          }
          continue;
        }
        while (permits.size() < group.models.size()) {
          auto more = context.extra_permit(provider, std::chrono::steady_clock::time_point{});
          if (!more) {
            break;
          }
          permits.emplace_back(std::move(more));
        }
        for (auto& permit : permits) {
          lanes.emplace_back([&, group = &group, permit = std::move(permit)] {
            for (std::size_t k = group->next++; k < group->models.size(); k = group->next++) {
              const std::size_t i = group->models[k];
              answers[i] = consult(context, models[i], user, images, temperature);
            }
          });
        }
      }
    } // every lane joined; their permits are back
    json responses = json::array();
    for (auto& answer : answers) {
      responses.push_back(std::move(answer));
    }
    return responses;
  }

  static std::string reply(const json& state, const std::string& id)
  {
    const int last = state["last_step"];
    const int total = state["total_steps"];
    const bool complete = last >= total;
    const json& responses = state["responses"];
    json out = {
        {"status", complete ? "consensus_complete" : "pause_for_consensus"},
        {"content_type", "markdown"},
        {"metadata", {{"tool_name", "consensus"}, {"step_number", last}, {"total_steps", total}}},
        {"continuation_offer",
         {{"continuation_id", id}, {"note", "Pass this continuation_id with the next step."}}},
        {"continuation_id", id},
        {"step_number", last},
        {"total_steps", total},
        {"next_step_required", !complete},
        {"current_model_index", responses.size()},
        {"model_consulted", responses.back()["model"]},
        {"model_stance", responses.back()["stance"]},
        {"model_response", responses.back()},
        {"accumulated_responses", responses}};
    std::string text;
    // One step shows its opinion; all at once shows every opinion.
    const std::size_t shown = state.value("all_at_once", false) ? responses.size() : 1;
    for (std::size_t i = responses.size() - shown; i < responses.size(); ++i) {
      const json& r = responses[i];
      text += "## " + r["model"].get<std::string>() + " (" + r["stance"].get<std::string>() +
              ")\n\n" +
              (r["status"] == "success" ? r["verdict"].get<std::string>()
                                        : "FAILED: " + r["error"]["message"].get<std::string>()) +
              "\n\n";
    }
    if (complete) {
      out["agent_analysis"] = state["analysis"];
      out["next_steps"] =
          "Synthesise: where the models agree, where they disagree and why, which arguments "
          "hold against the code and your own analysis; then give the user your "
          "recommendation, its risks and the next steps. Treat failed models as missing "
          "opinions, not as votes.";
    } else {
      const json& next = state["models"][static_cast<std::size_t>(last)];
      out["next_model"] = {{"model", next["model"]}, {"stance", next["stance"]}};
      out["models_remaining"] = total - last;
      out["required_actions"] = {
          "Note in findings what this opinion changes in your view (do not send it back to "
          "the models: each answers independently)",
          "Call consensus with step_number " + std::to_string(last + 1) +
              " and this continuation_id to consult " + next["model"].get<std::string>()};
    }
    out["content"] = text;
    return out.dump(-1, ' ', false, json::error_handler_t::replace);
  }
};

} // namespace

std::unique_ptr<Tool>
make_consensus()
{
  return std::make_unique<Consensus>();
}

} // namespace exai::core::tools
