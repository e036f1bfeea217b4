#include "core/providers/model_catalog.hpp"

#include "core/error.hpp"
#include "core/util/text.hpp"

#include <algorithm>
#include <cctype>
#include <numeric>
#include <utility>

namespace exai::core {

namespace {

ModelInfo
model(std::string name,
      std::string provider,
      std::vector<std::string> aliases,
      int context_window,
      int max_output,
      ModelCapabilities caps,
      std::string description)
{
  return ModelInfo{std::move(name),
                   std::move(provider),
                   std::move(aliases),
                   context_window,
                   max_output,
                   caps,
                   std::move(description)};
}

// Figures from the providers' public model pages (Moonshot platform docs and
// Z.ai docs, 2025). Where a provider does not publish a separate output
// limit, the largest value its API accepts for max_tokens is used.
std::vector<ModelInfo>
builtin_models()
{
  constexpr ModelCapabilities kText{false, true, false};
  constexpr ModelCapabilities kVision{true, true, false};
  constexpr ModelCapabilities kThinking{true, false, true};
  constexpr ModelCapabilities kGlm{false, true, true};
  constexpr ModelCapabilities kGlmVision{true, true, true};
  std::vector<ModelInfo> models;
  // Kimi (Moonshot): 14 models, 4 aliases.
  models.push_back(model("kimi-k2-0905-preview",
                         "kimi",
                         {"kimi-k2-0905", "kimi-k2"},
                         262144,
                         32768,
                         kText,
                         "Kimi K2 (2025-09), agentic coding"));
  models.push_back(model(
      "kimi-k2-0711-preview", "kimi", {"kimi-k2-0711"}, 131072, 32768, kText, "Kimi K2 (2025-07)"));
  models.push_back(model("kimi-k2-turbo-preview",
                         "kimi",
                         {"kimi-k2-turbo"},
                         262144,
                         32768,
                         kText,
                         "Kimi K2, high-speed output"));
  models.push_back(
      model("kimi-latest", "kimi", {}, 131072, 32768, kVision, "Latest Kimi assistant model"));
  models.push_back(
      model("kimi-latest-8k", "kimi", {}, 8192, 8192, kVision, "Latest Kimi model, 8k context"));
  models.push_back(model(
      "kimi-latest-32k", "kimi", {}, 32768, 16384, kVision, "Latest Kimi model, 32k context"));
  models.push_back(model(
      "kimi-latest-128k", "kimi", {}, 131072, 32768, kVision, "Latest Kimi model, 128k context"));
  models.push_back(model("kimi-thinking-preview",
                         "kimi",
                         {},
                         131072,
                         32768,
                         kThinking,
                         "Kimi multimodal reasoning model"));
  models.push_back(model("moonshot-v1-8k", "kimi", {}, 8192, 8192, kText, "Moonshot v1, 8k"));
  models.push_back(model("moonshot-v1-32k", "kimi", {}, 32768, 16384, kText, "Moonshot v1, 32k"));
  models.push_back(
      model("moonshot-v1-128k", "kimi", {}, 131072, 32768, kText, "Moonshot v1, 128k"));
  models.push_back(model(
      "moonshot-v1-8k-vision-preview", "kimi", {}, 8192, 8192, kVision, "Moonshot v1 vision, 8k"));
  models.push_back(model("moonshot-v1-32k-vision-preview",
                         "kimi",
                         {},
                         32768,
                         16384,
                         kVision,
                         "Moonshot v1 vision, 32k"));
  models.push_back(model("moonshot-v1-128k-vision-preview",
                         "kimi",
                         {},
                         131072,
                         32768,
                         kVision,
                         "Moonshot v1 vision, 128k"));
  // GLM (ZhipuAI / Z.ai): 5 models, 1 alias.
  models.push_back(
      model("glm-4.6", "glm", {}, 200000, 128000, kGlm, "GLM-4.6 flagship, 200k context"));
  models.push_back(model("glm-4.5", "glm", {}, 131072, 98304, kGlm, "GLM-4.5 flagship"));
  models.push_back(
      model("glm-4.5-flash", "glm", {}, 131072, 98304, kGlm, "GLM-4.5 fast, low-cost (default)"));
  models.push_back(
      model("glm-4.5-air", "glm", {"glm-4.5-x"}, 131072, 98304, kGlm, "GLM-4.5 lightweight"));
  models.push_back(
      model("glm-4.5v", "glm", {}, 65536, 16384, kGlmVision, "GLM-4.5 vision-language model"));
  return models;
}

} // namespace

std::string
to_lower_ascii(std::string_view text)
{
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) {
    return static_cast<char>(std::tolower(c));
  });
  return out;
}

std::size_t
edit_distance(std::string_view a, std::string_view b)
{
  std::vector<std::size_t> row(b.size() + 1);
  std::iota(row.begin(), row.end(), std::size_t{0});
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t above = row[j];
      const std::size_t substitute = diagonal + (a[i - 1] == b[j - 1] ? 0 : 1);
      row[j] = std::min({above + 1, row[j - 1] + 1, substitute});
      diagonal = above;
    }
  }
  return row[b.size()];
}

ModelCatalog::ModelCatalog(std::vector<ModelInfo> models)
    : models_(std::move(models))
{
}

const ModelCatalog&
ModelCatalog::builtin()
{
  static const ModelCatalog catalog(builtin_models());
  return catalog;
}

const ModelInfo*
ModelCatalog::find(std::string_view name) const
{
  const std::string wanted = to_lower_ascii(trim(name));
  for (const auto& info : models_) {
    if (info.name == wanted ||
        std::find(info.aliases.begin(), info.aliases.end(), wanted) != info.aliases.end()) {
      return &info;
    }
  }
  return nullptr;
}

const ModelInfo&
ModelCatalog::resolve(std::string_view name) const
{
  if (const ModelInfo* info = find(name)) {
    return *info;
  }
  std::string message = "unknown model '" + std::string(trim(name)) + "'";
  const auto matches = close_matches(name);
  if (!matches.empty()) {
    message += "; did you mean ";
    for (std::size_t i = 0; i < matches.size(); ++i) {
      message += (i == 0 ? "" : ", ") + matches[i];
    }
    message += "?";
  } else {
    message += "; see `exai detect-providers` for the model list";
  }
  throw Error(Errc::validation_error, message);
}

std::vector<std::string>
ModelCatalog::close_matches(std::string_view name, std::size_t limit) const
{
  const std::string wanted = to_lower_ascii(trim(name));
  std::vector<std::pair<std::size_t, std::string>> scored;
  const auto consider = [&](const std::string& candidate) {
    std::size_t distance = edit_distance(wanted, candidate);
    // A prefix ("kimi-k2-09") or substring is a strong hint whatever its length.
    if (!wanted.empty() && candidate.find(wanted) != std::string::npos) {
      distance = std::min<std::size_t>(distance, 1);
    }
    const std::size_t budget = std::max<std::size_t>(3, wanted.size() / 3);
    if (distance <= budget) {
      scored.emplace_back(distance, candidate);
    }
  };
  for (const auto& info : models_) {
    consider(info.name);
    for (const auto& alias : info.aliases) {
      consider(alias);
    }
  }
  std::stable_sort(
      scored.begin(), scored.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
  std::vector<std::string> out;
  for (auto& [distance, candidate] : scored) {
    if (out.size() == limit) {
      break;
    }
    out.push_back(std::move(candidate));
  }
  return out;
}

std::size_t
ModelCatalog::name_count(std::string_view provider_id) const
{
  std::size_t count = 0;
  for (const auto& info : models_) {
    if (info.provider_id == provider_id) {
      count += 1 + info.aliases.size();
    }
  }
  return count;
}

} // namespace exai::core
