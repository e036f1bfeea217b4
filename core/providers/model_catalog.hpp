#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace exai::core {

// What a model can do beyond plain text chat.
struct ModelCapabilities {
  bool images = false;           // accepts image input
  bool function_calling = false; // OpenAI-style tools / function calls
  bool thinking = false;         // extended reasoning ("thinking") output
};

// One catalog entry: a canonical model name and the aliases that resolve to it.
struct ModelInfo {
  std::string name;                 // canonical, lower case, e.g. "kimi-k2-0905-preview"
  std::string provider_id;          // "kimi" or "glm"
  std::vector<std::string> aliases; // other names accepted for this model
  int context_window = 0;           // tokens
  int max_output_tokens = 0;        // tokens
  ModelCapabilities capabilities;
  std::string description;
};

// The built-in model list of SPEC §4 (Kimi: 14 models + 4 aliases, GLM: 5 models + 1 alias).
// Immutable; safe to share between threads.
class ModelCatalog {
public:
  explicit ModelCatalog(std::vector<ModelInfo> models);

  // The process-wide built-in catalog (a function-local static, built on first use).
  static const ModelCatalog& builtin();

  // Every model, in catalog order.
  const std::vector<ModelInfo>& models() const noexcept { return models_; }

  // The model named `name` (canonical or alias, any letter case, surrounding
  // whitespace ignored), or null when the catalog has no such name.
  const ModelInfo* find(std::string_view name) const;

  // Like find(), but throws Error(validation_error) naming the model and
  // listing the closest known names when there is no match.
  const ModelInfo& resolve(std::string_view name) const;

  // Up to `limit` known names (canonical or alias) closest to `name` by edit
  // distance, best first; only reasonably close names are returned.
  std::vector<std::string> close_matches(std::string_view name, std::size_t limit = 3) const;

  // Every name (canonical + aliases) of `provider_id`'s models.
  std::size_t name_count(std::string_view provider_id) const;

private:
  std::vector<ModelInfo> models_;
};

// Lower-cases ASCII letters of `text`.
std::string to_lower_ascii(std::string_view text);

// Levenshtein distance between `a` and `b` (byte-wise).
std::size_t edit_distance(std::string_view a, std::string_view b);

} // namespace exai::core
