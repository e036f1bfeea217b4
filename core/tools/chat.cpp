// chat: a (multi-turn) conversation with a Kimi or GLM model, with files,
// images, thinking and web search.

#include "core/calls/conversation_store.hpp"
#include "core/config/config.hpp"
#include "core/files/file_bundle.hpp"
#include "core/files/image_input.hpp"
#include "core/providers/provider_features.hpp"
#include "core/tools/builtin.hpp"
#include "core/tools/model_call.hpp"
#include "core/tools/prompts.hpp"
#include "core/tools/tool_files.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdint>

namespace exai::core::tools {

namespace {

ToolSpec
chat_spec()
{
  ToolSpec spec;
  spec.name = "chat";
  spec.title = "Chat with Kimi or GLM";
  spec.description =
      "General chat and collaborative thinking with a Kimi or GLM model: a second opinion, "
      "brainstorming, explanations, code questions. Send code as files (absolute paths; "
      "directories expand) rather than pasting it. Pass the continuation_id of an earlier "
      "answer to continue that conversation; it keeps its model.";
  spec.model_class = ModelClass::fast;
  spec.default_temperature = 0.5;
  spec.common = field::kModelCall | field::kContinuationId | field::kFiles | field::kImages;
  spec.properties = {
      {"prompt",
       {{"type", "string"},
        {"minLength", 1},
        {"description",
         "Your question or message, with the context the model needs (up to 100,000 "
         "characters; longer prompts go in a file named prompt.txt in files)"}}},
      {"system_prompt",
       {{"type", "string"}, {"description", "Replaces exai's chat system prompt for this call"}}},
      {"max_tokens",
       {{"type", "integer"}, {"minimum", 1}, {"description", "Limit of the answer, in tokens"}}}};
  spec.required = {"prompt"};
  return spec;
}

// A files entry named prompt.txt carries the prompt (the original daemon's
// answer to RESEND_PROMPT); it is read here, not embedded as a file.
std::string
take_prompt_files(const ToolContext& context, std::vector<std::string>& files)
{
  std::string text;
  for (auto it = files.begin(); it != files.end();) {
    const auto slash = it->rfind('/');
    if (it->substr(slash == std::string::npos ? 0 : slash + 1) != "prompt.txt") {
      ++it;
      continue;
    }
    auto opened = context.file_roots.open(*it);
    if (auto* refusal = std::get_if<PathRefusal>(&opened)) {
      throw Error(Errc::validation_error,
                  "files: prompt file '" + *it + "' " + refusal->rule,
                  {{"field", "files"}, {"value", *it}, {"rule", refusal->rule}});
    }
    const auto& path = std::get<OpenedPath>(opened);
    if (path.directory() ||
        static_cast<std::uint64_t>(path.info.st_size) > context.config.file_max_bytes) {
      throw Error(Errc::validation_error,
                  "files: prompt file '" + *it + "' must be a file of at most EXAI_FILE_MAX_BYTES",
                  {{"field", "files"}, {"value", *it}, {"rule", "EXAI_FILE_MAX_BYTES"}});
    }
    std::string content(static_cast<std::size_t>(path.info.st_size), '\0');
    const ssize_t n = ::pread(path.fd.get(), content.data(), content.size(), 0);
    content.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    text += (text.empty() ? "" : "\n\n") + content;
    it = files.erase(it);
  }
  return text;
}

class Chat final : public Tool {
public:
  const ToolSpec& spec() const override
  {
    static const ToolSpec spec = chat_spec();
    return spec;
  }

  ToolResult run(ToolContext& context) const override
  {
    return run_model_step(context, *prepare(context));
  }

  // A call with nothing to read (no files, no images) on a daemon whose
  // conversations are its own needs no call thread.
  std::unique_ptr<ModelStep> model_step(ToolContext& context) const override
  {
    const auto& args = context.arguments;
    if (context.conversations.shared() || !strings_arg(args, "files").empty() ||
        !strings_arg(args, "images").empty()) {
      return nullptr;
    }
    return prepare(context);
  }

  // Everything before the model request, and what follows its answer.
  std::unique_ptr<ModelStep> prepare(ToolContext& context) const
  {
    const auto& args = context.arguments;
    std::vector<std::string> files = strings_arg(args, "files");
    std::string prompt = take_prompt_files(context, files);
    if (const auto given = string_arg(args, "prompt"); given && !given->empty()) {
      prompt += (prompt.empty() ? "" : "\n\n") + *given;
    }
    if (prompt.size() > kMaxPromptChars) {
      throw Error(
          Errc::resend_prompt,
          "the prompt is " + std::to_string(prompt.size()) + " characters, over the " +
              std::to_string(kMaxPromptChars) +
              " limit: save it to a file named prompt.txt and pass its absolute path in files",
          {{"prompt_size", prompt.size()}, {"limit", kMaxPromptChars}});
    }

    const std::string& conversation_id = context.plan.conversation_id;
    Conversation history;
    if (!conversation_id.empty()) {
      auto found = context.conversations.find(conversation_id);
      if (!found) {
        throw Error(Errc::validation_error,
                    "conversation '" + conversation_id +
                        "' was not found or has expired; start a new one without "
                        "continuation_id",
                    {{"field", "continuation_id"}, {"value", conversation_id}});
      }
      if (found->turns >= context.conversations.max_turns()) {
        throw Error(Errc::validation_error,
                    "conversation '" + conversation_id + "' reached its limit of " +
                        std::to_string(context.conversations.max_turns()) + " turns",
                    {{"field", "continuation_id"}, {"value", conversation_id}});
      }
      history = std::move(*found);
    }

    std::vector<ChatImage> images;
    const auto image_specs = strings_arg(args, "images");
    for (std::size_t i = 0; i < image_specs.size(); ++i) {
      images.push_back(load_image(context.file_roots,
                                  image_specs[i],
                                  "images[" + std::to_string(i) + "]",
                                  context.config.image_max_bytes));
    }

    const std::string system_prompt =
        string_arg(args, "system_prompt").value_or(std::string(prompts::get("chat")));
    FileBundle bundle;
    if (!files.empty()) {
      FileRequest request;
      request.paths = files;
      request.token_budget =
          file_token_budget(context, history_tokens(system_prompt, history, prompt));
      request.max_file_bytes = context.config.file_max_bytes;
      request.already_sent = &history.files;
      request.stop = context.stop;
      bundle = collect_files(context.file_roots, request);
    }
    ChatMessage user("user",
                     prompt + (bundle.text.empty() ? "" : "\n\n" + bundle.text) +
                         skipped_note(bundle.skipped));
    user.images = images;

    const auto thinking = parse_thinking_mode(string_arg(args, "thinking_mode").value_or(""));
    const bool web_search = bool_arg(args, "use_websearch").value_or(false);
    const double temperature =
        number_arg(args, "temperature", 0.0, 1.0).value_or(spec().default_temperature);
    const auto max_tokens = int_arg(args, "max_tokens", 1, 1 << 30);
    auto step = std::make_unique<ModelStep>();
    // The step outlives this function (not the call): it keeps what it needs.
    const std::size_t image_count = images.size();
    ChatMessage remembered = remembered_message(user, image_count);
    // Before the lambdas: their captures are initialized in no set order.
    nlohmann::json files_meta = files.empty() ? nlohmann::json() : files_metadata(bundle);
    step->build = [&context,
                   system_prompt,
                   history = std::move(history.messages),
                   user = std::move(user),
                   thinking,
                   web_search,
                   temperature,
                   max_tokens](const CallPlan& plan, ModelCallInfo& call_info) {
      ChatRequest request = model_request(context, plan, temperature, max_tokens);
      const ModelInfo* model = context.providers.catalog().find(plan.model);
      request.messages.emplace_back("system", system_prompt);
      request.messages.insert(request.messages.end(), history.begin(), history.end());
      request.messages.push_back(user);
      if (thinking && model != nullptr) {
        if (auto note = apply_thinking(request, plan.provider, *model, *thinking); !note.empty()) {
          call_info.notes.push_back(std::move(note));
        }
      }
      if (web_search) {
        apply_web_search(request, plan.provider);
      }
      return request;
    };
    step->finish = [this,
                    conversation_id,
                    remembered = std::move(remembered),
                    image_count,
                    files_meta = std::move(files_meta),
                    embedded = std::move(bundle.embedded),
                    web_search](ToolContext& call,
                                const ChatOutcome& outcome,
                                ModelCallInfo& info) -> ToolResult {
      if (const auto* failure = std::get_if<ChatFailure>(&outcome)) {
        return tool_failure(*failure);
      }
      const auto& reply = std::get<ChatReply>(outcome);
      const auto [id, turns] = call.conversations.record_turn(
          conversation_id,
          remembered,
          ChatMessage("assistant", reply.content),
          TurnInfo{std::string(name()), call.plan.provider, call.plan.model, embedded});
      const int remaining = call.conversations.max_turns() - turns;
      nlohmann::json offer = nullptr;
      nlohmann::json metadata = reply_metadata(call.plan, reply);
      if (remaining > 0) {
        offer = {{"continuation_id", id},
                 {"remaining_turns", remaining},
                 {"note",
                  "Pass continuation_id to continue this conversation (" +
                      std::to_string(remaining) + " turns left)."}};
        metadata["conversation_ready"] = true;
      }
      metadata["finish_reason"] = reply.finish_reason;
      metadata["conversation_turns"] = turns;
      if (!files_meta.is_null()) {
        metadata["files"] = files_meta;
      }
      if (image_count > 0) {
        metadata["images"] = image_count;
      }
      if (web_search) {
        metadata["web_search"] = {
            {"rounds", info.search_rounds},
            {"results", reply.web_search.is_null() ? nlohmann::json::array() : reply.web_search}};
      }
      if (!info.notes.empty()) {
        metadata["notes"] = info.notes;
      }
      return ToolSuccess{{envelope(name(), reply.content, "text", metadata, offer)}};
    };
    return step;
  }

private:
  // Tokens the request sends besides files.
  static std::size_t history_tokens(const std::string& system_prompt,
                                    const Conversation& history,
                                    const std::string& prompt)
  {
    std::size_t used = estimate_tokens(system_prompt) + estimate_tokens(prompt);
    for (const auto& message : history.messages) {
      used += estimate_tokens(message.content);
    }
    return used;
  }
};

} // namespace

std::unique_ptr<Tool>
make_chat()
{
  return std::make_unique<Chat>();
}

} // namespace exai::core::tools
