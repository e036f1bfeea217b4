// kimi_manage_files: list, delete, or clean up by age the files in the
// Moonshot account (Files API).

#include "core/tools/builtin.hpp"
#include "core/tools/provider/provider_files.hpp"

#include <chrono>

namespace exai::core::tools {

namespace {

constexpr int kMaxList = 1000;

// One file of the provider's list; fields of an unexpected type read as
// empty (the answer is the provider's, not ours to trust).
nlohmann::json
file_entry(const nlohmann::json& item)
{
  const auto text = [&](const char* key) {
    const auto it = item.find(key);
    return it != item.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  const auto number = [&](const char* key) {
    const auto it = item.find(key);
    return it != item.end() && it->is_number() ? it->get<std::int64_t>() : std::int64_t{0};
  };
  return {{"id", text("id")},
          {"filename", text("filename")},
          {"bytes", number("bytes")},
          {"created_at", number("created_at")},
          {"purpose", text("purpose")}};
}

class KimiManageFiles final : public Tool {
public:
  const ToolSpec& spec() const override
  {
    static const ToolSpec spec = [] {
      ToolSpec s;
      s.name = "kimi_manage_files";
      s.title = "Manage Kimi files";
      s.description =
          "Manage the files in the Moonshot account: list them, delete one (file_id), or clean "
          "up every file older than older_than_hours (dry_run lists what would go).";
      s.read_only = false;
      s.properties = {
          {"operation",
           {{"type", "string"},
            {"enum", {"list", "delete", "cleanup"}},
            {"description", "list | delete (needs file_id) | cleanup (by age)"}}},
          {"file_id", {{"type", "string"}, {"minLength", 1}, {"maxLength", 256}}},
          {"limit",
           {{"type", "integer"},
            {"minimum", 1},
            {"maximum", kMaxList},
            {"default", 100},
            {"description", "list: at most this many files"}}},
          {"older_than_hours",
           {{"type", "integer"},
            {"minimum", 0},
            {"maximum", 24 * 365},
            {"default", 24},
            {"description", "cleanup: delete files created more than this many hours ago"}}},
          {"dry_run",
           {{"type", "boolean"},
            {"default", false},
            {"description", "cleanup: only list what would be deleted"}}}};
      s.required = {"operation"};
      return s;
    }();
    return spec;
  }
  CallPlan plan(const PlanInput& input) const override
  {
    if (string_arg(input.arguments, "operation") == "delete" &&
        !string_arg(input.arguments, "file_id")) {
      throw Error(Errc::validation_error,
                  "argument 'file_id' is required when operation is delete",
                  {{"field", "file_id"}, {"rule", "required when operation is delete"}});
    }
    return provider_plan(input, kKimiProviderId);
  }
  bool reusable() const override { return false; }
  ToolResult run(ToolContext& context) const override
  {
    const auto& args = context.arguments;
    const std::string operation = string_arg(args, "operation").value_or("list");
    if (operation == "delete") {
      const std::string id = string_arg(args, "file_id").value_or("");
      auto deleted = remove(context, id);
      if (auto* failure = std::get_if<ToolFailure>(&deleted)) {
        return std::move(*failure);
      }
      return reply({{"operation", "delete"}, {"file_id", id}, {"deleted", true}});
    }
    auto listed =
        json_reply(provider_http(context).send(
                       kKimiProviderId, http_request(context, "GET", "/files"), context.stop),
                   "listing files");
    if (auto* failure = std::get_if<ToolFailure>(&listed)) {
      return std::move(*failure);
    }
    const auto& answer = std::get<nlohmann::json>(listed);
    nlohmann::json files = nlohmann::json::array();
    if (answer.is_object() && answer.contains("data") && answer["data"].is_array()) {
      for (const auto& item : answer["data"]) {
        if (item.is_object()) {
          files.push_back(file_entry(item));
        }
      }
    }
    if (operation == "list") {
      const auto limit =
          static_cast<std::size_t>(int_arg(args, "limit", 1, kMaxList).value_or(100));
      if (files.size() > limit) {
        files.erase(files.begin() + static_cast<std::ptrdiff_t>(limit), files.end());
      }
      return reply({{"operation", "list"}, {"count", files.size()}, {"files", files}});
    }
    const int hours = int_arg(args, "older_than_hours", 0, 24 * 365).value_or(24);
    const bool dry_run = bool_arg(args, "dry_run").value_or(false);
    const auto cutoff = std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count() -
                        static_cast<std::int64_t>(hours) * 3600;
    nlohmann::json matched = nlohmann::json::array();
    nlohmann::json failed = nlohmann::json::array();
    std::size_t deleted = 0;
    for (const auto& file : files) {
      if (file["created_at"].get<std::int64_t>() > cutoff) {
        continue;
      }
      matched.push_back(file["id"]);
      if (dry_run) {
        continue;
      }
      auto removed = remove(context, file["id"].get<std::string>());
      if (auto* failure = std::get_if<ToolFailure>(&removed)) {
        failed.push_back({{"file_id", file["id"]}, {"error", failure->message}});
      } else {
        ++deleted;
      }
    }
    return reply({{"operation", "cleanup"},
                  {"older_than_hours", hours},
                  {"dry_run", dry_run},
                  {"matched", matched},
                  {"deleted_count", deleted},
                  {"failed", failed}});
  }

private:
  static std::variant<nlohmann::json, ToolFailure> remove(ToolContext& context,
                                                          const std::string& id)
  {
    auto result = json_reply(
        provider_http(context).send(
            kKimiProviderId, http_request(context, "DELETE", "/files/" + id), context.stop),
        "deleting file " + id);
    if (std::holds_alternative<nlohmann::json>(result)) {
      forget_upload(context, kKimiProviderId, id);
    } else {
      std::get<ToolFailure>(result).details["file_id"] = id;
    }
    return result;
  }
  ToolResult reply(const nlohmann::json& report) const
  {
    return ToolSuccess{{envelope(
        name(), report.dump(), "json", {{"provider_used", std::string(kKimiProviderId)}})}};
  }
};

} // namespace

std::unique_ptr<Tool>
make_kimi_manage_files()
{
  return std::make_unique<KimiManageFiles>();
}

} // namespace exai::core::tools
