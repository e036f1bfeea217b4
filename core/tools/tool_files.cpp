#include "core/tools/tool_files.hpp"

#include <algorithm>

namespace exai::core {

std::size_t
file_token_budget(const ToolContext& context, std::size_t used_tokens)
{
  const auto& catalog = context.providers.catalog();
  const ModelInfo* model = catalog.find(context.plan.model);
  std::size_t window = model != nullptr ? static_cast<std::size_t>(model->context_window) : 0;
  std::size_t reserve =
      model != nullptr
          ? static_cast<std::size_t>(std::min(model->max_output_tokens, model->context_window / 4))
          : 0;
  if (context.plan.fallback) {
    if (const ModelInfo* other = catalog.find(context.plan.fallback->model);
        other != nullptr && static_cast<std::size_t>(other->context_window) < window) {
      window = static_cast<std::size_t>(other->context_window);
      reserve =
          static_cast<std::size_t>(std::min(other->max_output_tokens, other->context_window / 4));
    }
  }
  const std::size_t used = used_tokens + reserve;
  return window > used + kMinFileBudget ? window - used : kMinFileBudget;
}

nlohmann::json
files_metadata(const FileBundle& bundle)
{
  nlohmann::json embedded = nlohmann::json::array();
  for (const auto& file : bundle.embedded) {
    embedded.push_back({{"path", file.path}, {"lines", file.lines}, {"tokens", file.tokens}});
  }
  nlohmann::json skipped = nlohmann::json::array();
  for (const auto& file : bundle.skipped) {
    skipped.push_back({{"path", file.path}, {"reason", file.reason}});
  }
  return {{"embedded", std::move(embedded)},
          {"skipped", std::move(skipped)},
          {"tokens", bundle.tokens}};
}

std::string
skipped_note(const std::vector<SkippedFile>& skipped)
{
  if (skipped.empty()) {
    return {};
  }
  std::string note = "\n\n--- FILES NOT INCLUDED ---\n";
  for (const auto& file : skipped) {
    note += "- " + file.path + ": " + file.reason + "\n";
  }
  return note + "--- END FILES NOT INCLUDED ---\n";
}

} // namespace exai::core
