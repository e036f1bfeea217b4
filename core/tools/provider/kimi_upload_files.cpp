// kimi_upload_files: local files to Moonshot's Files API (purpose
// file-extract), returning each file's id and the text Kimi extracted.
// Identical content is uploaded once (the daemon's upload cache).

#include "core/tools/builtin.hpp"
#include "core/tools/provider/provider_files.hpp"

namespace exai::core::tools {

namespace {

constexpr int kMaxFiles = 20;
constexpr std::size_t kMaxTextChars = 200000; // extracted text returned per file

class KimiUploadFiles final : public Tool {
public:
  const ToolSpec& spec() const override
  {
    static const ToolSpec spec = [] {
      ToolSpec s;
      s.name = "kimi_upload_files";
      s.title = "Upload files to Kimi";
      s.description =
          "Upload local files (absolute paths under EXAI_FILE_ROOTS, each at most "
          "EXAI_UPLOAD_MAX_BYTES) to Moonshot's Files API for extraction, and return each file's "
          "id and extracted text. Content uploaded before (within 24 h) is not sent again. Use "
          "the ids with kimi_chat_with_files; list or delete them with kimi_manage_files.";
      s.read_only = false;
      s.properties = {{"files",
                       {{"type", "array"},
                        {"items", {{"type", "string"}, {"minLength", 1}, {"maxLength", 4096}}},
                        {"minItems", 1},
                        {"maxItems", kMaxFiles},
                        {"description", "Absolute paths of the files to upload"}}},
                      {"include_content",
                       {{"type", "boolean"},
                        {"default", true},
                        {"description", "Return the text Kimi extracted from each file"}}}};
      s.required = {"files"};
      return s;
    }();
    return spec;
  }
  CallPlan plan(const PlanInput& input) const override
  {
    return provider_plan(input, kKimiProviderId);
  }
  // Each call reports what it uploaded and what the upload cache had.
  bool reusable() const override { return false; }
  ToolResult run(ToolContext& context) const override
  {
    const auto files = strings_arg(context.arguments, "files");
    const bool include = bool_arg(context.arguments, "include_content").value_or(true);
    nlohmann::json listed = nlohmann::json::array();
    for (std::size_t i = 0; i < files.size(); ++i) {
      auto uploaded = upload_file(
          context, kKimiProviderId, files[i], "files[" + std::to_string(i) + "]", "file-extract");
      if (auto* failure = std::get_if<ToolFailure>(&uploaded)) {
        return std::move(*failure);
      }
      const auto& file = std::get<UploadedFile>(uploaded);
      nlohmann::json item = {{"path", file.path},
                             {"filename", file.filename},
                             {"file_id", file.file_id},
                             {"size_bytes", file.bytes},
                             {"cached", file.cached}};
      if (include) {
        auto text = file_text(context, kKimiProviderId, file.file_id);
        if (auto* failure = std::get_if<ToolFailure>(&text)) {
          return std::move(*failure);
        }
        const auto& content = std::get<std::string>(text);
        item["content"] = content.substr(0, kMaxTextChars);
        item["content_truncated"] = content.size() > kMaxTextChars;
      }
      listed.push_back(std::move(item));
      if (context.progress) {
        context.progress("uploaded " + file.filename);
      }
    }
    return ToolSuccess{
        {envelope(name(),
                  listed.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                  "json",
                  {{"provider_used", std::string(kKimiProviderId)}, {"files", listed.size()}})}};
  }
};

} // namespace

std::unique_ptr<Tool>
make_kimi_upload_files()
{
  return std::make_unique<KimiUploadFiles>();
}

} // namespace exai::core::tools
