#pragma once

// Which model serves a call. A pinned model is used as named; `auto` (per
// call, or as DEFAULT_MODEL) picks by the tool's class from the routing
// variables, on a provider that is configured and allows the model, and names
// an equivalent on the other provider for one fallback.

#include "core/config/settings.hpp"
#include "core/providers/model_catalog.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace exai::core {

class ProviderRegistry;
struct ProviderConfig;

// What kind of model a tool wants under `auto`.
enum class ModelClass {
  none, // the tool calls no model
  fast, // chat, challenge, simple tools: GLM_SPEED_MODEL, else KIMI_SPEED_MODEL
  deep, // thinkdeep, expert analysis: KIMI_QUALITY_MODEL, else GLM_QUALITY_MODEL
  kimi, // Kimi-native tools: KIMI_DEFAULT_MODEL, no fallback
};

// "none" | "fast" | "deep" | "kimi".
std::string_view model_class_name(ModelClass model_class) noexcept;

// The routing variables, validated: each names a catalog model of its provider.
struct RoutingModels {
  std::string glm_speed = "glm-4.5-flash";
  std::string kimi_speed = "kimi-k2-turbo-preview";
  std::string kimi_quality = "kimi-thinking-preview";
  std::string glm_quality = "glm-4.6";
  std::string kimi_default = "kimi-k2-0905-preview";

  // Reads GLM_SPEED_MODEL, KIMI_SPEED_MODEL, KIMI_QUALITY_MODEL,
  // GLM_QUALITY_MODEL and KIMI_DEFAULT_MODEL. Throws Error(config_invalid)
  // naming the variable, the value and the rule.
  static RoutingModels read(const Settings& settings, const ModelCatalog& catalog);
};

// What the call needs from its model beyond text.
struct RouteNeeds {
  ModelClass model_class = ModelClass::fast;
  bool vision = false;   // images attached
  bool thinking = false; // thinking_mode high or max: prefer a thinking model
};

// A model and its provider, by canonical name.
struct ModelRef {
  std::string provider; // provider id
  std::string model;    // canonical model name
};

struct ModelChoice {
  ModelRef primary;
  std::optional<ModelRef> fallback; // auto only: the other provider's equivalent
  bool automatic = false;           // chosen by auto
  std::string reason;               // why, for metadata and the debug log
};

inline constexpr std::string_view kAutoModel = "auto";

// True for "auto" in any letter case.
bool is_auto_model(std::string_view name);

// The model for a call that asked for `requested` (empty = DEFAULT_MODEL).
// A pinned name resolves as ProviderRegistry::resolve_model() does (same
// errors) and never falls back. Throws Error(provider_unavailable) when auto
// finds no configured provider that can serve `needs`, naming why each
// provider could not, and Error(validation_error) when a pinned model cannot
// take images although the call has some.
ModelChoice choose_model(const ProviderRegistry& providers,
                         std::string_view requested,
                         const RouteNeeds& needs);

} // namespace exai::core
