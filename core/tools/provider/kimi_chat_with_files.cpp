// kimi_chat_with_files: chat with a Kimi model over files in its Files API
// (by id) and local files (uploaded first, once per content). Each file's
// extracted text goes in as a system message, as Moonshot documents.

#include "core/tools/builtin.hpp"
#include "core/tools/model_call.hpp"
#include "core/tools/provider/provider_files.hpp"

#include <algorithm>

namespace exai::core::tools {

namespace {

constexpr int kMaxFiles = 20;

class KimiChatWithFiles final : public Tool {
public:
  const ToolSpec& spec() const override
  {
    static const ToolSpec spec = [] {
      ToolSpec s;
      s.name = "kimi_chat_with_files";
      s.title = "Chat with Kimi over files";
      s.description =
          "Ask a Kimi model about files: ids from kimi_upload_files (file_ids) and/or local "
          "files (files: absolute paths under EXAI_FILE_ROOTS, uploaded first, once per "
          "content). Kimi reads the text it extracted from each file.";
      s.model_class = ModelClass::kimi;
      s.default_temperature = 0.3;
      s.common = field::kModel | field::kTemperature;
      s.properties = {{"prompt",
                       {{"type", "string"},
                        {"minLength", 1},
                        {"maxLength", 100000},
                        {"description", "Your question about the files"}}},
                      {"file_ids",
                       {{"type", "array"},
                        {"items", {{"type", "string"}, {"minLength", 1}, {"maxLength", 256}}},
                        {"maxItems", kMaxFiles},
                        {"description", "Ids of files already in Kimi's Files API"}}},
                      {"files",
                       {{"type", "array"},
                        {"items", {{"type", "string"}, {"minLength", 1}, {"maxLength", 4096}}},
                        {"maxItems", kMaxFiles},
                        {"description", "Absolute paths of local files to upload and include"}}}};
      s.required = {"prompt"};
      return s;
    }();
    return spec;
  }
  CallPlan plan(const PlanInput& input) const override
  {
    if (strings_arg(input.arguments, "file_ids").empty() &&
        strings_arg(input.arguments, "files").empty()) {
      throw Error(Errc::validation_error,
                  "argument 'file_ids' or 'files' is required: name at least one file",
                  {{"field", "file_ids"}, {"rule", "file_ids or files must name a file"}});
    }
    (void)provider_plan(input, kKimiProviderId); // the files live in Kimi
    CallPlan plan = plan_model(input, ModelClass::kimi);
    require_provider(plan, kKimiProviderId, "Kimi", name());
    plan.fallback.reset(); // GLM cannot read Kimi's files
    return plan;
  }
  ToolResult run(ToolContext& context) const override
  {
    const auto& args = context.arguments;
    std::vector<std::string> ids = strings_arg(args, "file_ids");
    const auto paths = strings_arg(args, "files");
    nlohmann::json uploaded = nlohmann::json::array();
    for (std::size_t i = 0; i < paths.size(); ++i) {
      auto result = upload_file(
          context, kKimiProviderId, paths[i], "files[" + std::to_string(i) + "]", "file-extract");
      if (auto* failure = std::get_if<ToolFailure>(&result)) {
        return std::move(*failure);
      }
      const auto& file = std::get<UploadedFile>(result);
      ids.push_back(file.file_id);
      uploaded.push_back({{"path", file.path}, {"file_id", file.file_id}, {"cached", file.cached}});
    }
    std::vector<ChatMessage> file_messages;
    for (const auto& id : ids) {
      auto text = file_text(context, kKimiProviderId, id);
      if (auto* failure = std::get_if<ToolFailure>(&text)) {
        return std::move(*failure);
      }
      file_messages.emplace_back("system", std::move(std::get<std::string>(text)));
    }
    const double temperature =
        number_arg(args, "temperature", 0.0, 1.0).value_or(spec().default_temperature);
    const ChatMessage user("user", string_arg(args, "prompt").value_or(""));
    const RequestBuilder build = [&](const CallPlan& plan, ModelCallInfo&) {
      ChatRequest request = model_request(context, plan, temperature);
      request.messages = file_messages;
      request.messages.push_back(user);
      return request;
    };
    ModelCallInfo info;
    ChatOutcome outcome = call_model(context, build, info);
    if (auto* failure = std::get_if<ChatFailure>(&outcome)) {
      return tool_failure(*failure);
    }
    const auto& reply = std::get<ChatReply>(outcome);
    nlohmann::json metadata = reply_metadata(context.plan, reply);
    metadata["file_ids"] = ids;
    metadata["uploaded"] = uploaded;
    metadata["finish_reason"] = reply.finish_reason;
    return ToolSuccess{{envelope(name(), reply.content, "text", metadata)}};
  }
};

} // namespace

std::unique_ptr<Tool>
make_kimi_chat_with_files()
{
  return std::make_unique<KimiChatWithFiles>();
}

} // namespace exai::core::tools
