// glm_upload_file: one local file to GLM's Files API (purpose agent).
// Identical content is uploaded once (the daemon's upload cache).

#include "core/tools/builtin.hpp"
#include "core/tools/provider/provider_files.hpp"

namespace exai::core::tools {

namespace {

class GlmUploadFile final : public Tool {
public:
  const ToolSpec& spec() const override
  {
    static const ToolSpec spec = [] {
      ToolSpec s;
      s.name = "glm_upload_file";
      s.title = "Upload a file to GLM";
      s.description =
          "Upload one local file (absolute path under EXAI_FILE_ROOTS, at most "
          "EXAI_UPLOAD_MAX_BYTES) to GLM's Files API for its agents and return the file id. "
          "Content uploaded before (within 24 h) is not sent again.";
      s.read_only = false;
      s.properties = {{"file",
                       {{"type", "string"},
                        {"minLength", 1},
                        {"maxLength", 4096},
                        {"description", "Absolute path of the file"}}},
                      {"purpose",
                       {{"type", "string"},
                        {"enum", {"agent"}},
                        {"default", "agent"},
                        {"description", "What GLM keeps the file for"}}}};
      s.required = {"file"};
      return s;
    }();
    return spec;
  }
  CallPlan plan(const PlanInput& input) const override
  {
    return provider_plan(input, kGlmProviderId);
  }
  bool reusable() const override { return false; }
  ToolResult run(ToolContext& context) const override
  {
    auto result = upload_file(context,
                              kGlmProviderId,
                              string_arg(context.arguments, "file").value_or(""),
                              "file",
                              string_arg(context.arguments, "purpose").value_or("agent"));
    if (auto* failure = std::get_if<ToolFailure>(&result)) {
      return std::move(*failure);
    }
    const auto& file = std::get<UploadedFile>(result);
    const nlohmann::json report = {{"file_id", file.file_id},
                                   {"filename", file.filename},
                                   {"path", file.path},
                                   {"size_bytes", file.bytes},
                                   {"cached", file.cached}};
    return ToolSuccess{{envelope(
        name(), report.dump(), "json", {{"provider_used", std::string(kGlmProviderId)}})}};
  }
};

} // namespace

std::unique_ptr<Tool>
make_glm_upload_file()
{
  return std::make_unique<GlmUploadFile>();
}

} // namespace exai::core::tools
