#pragma once

#include "core/config/settings.hpp"
#include "core/providers/model_catalog.hpp"
#include "core/providers/model_routing.hpp"

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace exai::core {

// Provider ids (stable, lower case) as used in the protocol, logs and capacity scopes.
inline constexpr std::string_view kKimiProviderId = "kimi";
inline constexpr std::string_view kGlmProviderId = "glm";

// Built-in defaults of SPEC §1.
inline constexpr std::string_view kDefaultKimiUrl = "https://api.moonshot.ai/v1";
inline constexpr std::string_view kDefaultGlmUrl = "https://api.z.ai/api/paas/v4";
inline constexpr std::string_view kDefaultModel = "auto";

// One provider as detected from the settings. The api_key is a secret: never
// log or print it (use log::redact() or key_length).
struct ProviderConfig {
  std::string id;           // "kimi" | "glm"
  std::string display_name; // "KIMI" | "GLM"
  std::string api_key;      // empty when absent (placeholders count as absent)
  std::string key_variable; // the variable the key came from, e.g. "MOONSHOT_API_KEY"
  std::string base_url;     // without a trailing slash
  std::chrono::seconds read_timeout{0};
  bool enabled = true;                  // not gated off by ALLOWED_PROVIDERS / DISABLED_PROVIDERS
  std::string disabled_reason;          // why the provider is unusable, empty when available
  std::vector<std::string> restriction; // canonical names from *_ALLOWED_MODELS (empty = all)
  std::vector<const ModelInfo*> models; // allowed models, catalog order
  std::size_t name_count = 0;           // allowed names, aliases included

  bool key_present() const noexcept { return !api_key.empty(); }
  std::size_t key_length() const noexcept { return api_key.size(); }
  // Has a key and is not gated off: calls may be routed to it.
  bool available() const noexcept { return key_present() && enabled; }
};

// A model name resolved to its catalog entry and the provider serving it.
struct ResolvedModel {
  const ProviderConfig* provider = nullptr; // points into the registry
  const ModelInfo* model = nullptr;         // points into the catalog
};

// The providers of this process, detected once from the settings. Immutable
// after build(), so any number of threads may read it without locking.
class ProviderRegistry {
public:
  // Detects providers from `settings` (SPEC §1):
  //  - keys KIMI_API_KEY, else MOONSHOT_API_KEY; GLM_API_KEY, else ZHIPUAI_API_KEY;
  //    empty values and the placeholders your_kimi_api_key_here /
  //    your_glm_api_key_here count as absent;
  //  - ALLOWED_PROVIDERS / DISABLED_PROVIDERS (comma-separated ids; "moonshot"
  //    and "zhipuai" are accepted as synonyms);
  //  - KIMI_ALLOWED_MODELS / GLM_ALLOWED_MODELS (comma-separated names or aliases);
  //  - KIMI_API_URL / GLM_API_URL, KIMI_TIMEOUT_SECS / GLM_TIMEOUT_SECS (1..3600);
  //  - DEFAULT_MODEL (a model or "auto") and the routing variables of
  //    RoutingModels::read().
  // Throws Error(config_invalid) naming the variable, the value and what is allowed.
  static ProviderRegistry build(const Settings& settings,
                                const ModelCatalog& catalog = ModelCatalog::builtin());

  // Both providers, Kimi first, whether available or not.
  const std::vector<ProviderConfig>& providers() const noexcept { return providers_; }

  // The available providers (key present and not gated off), Kimi first.
  std::vector<const ProviderConfig*> configured() const;

  // The provider with id `id` (case-insensitive), or null.
  const ProviderConfig* find(std::string_view id) const;

  bool any_configured() const;

  // Resolves `name` (alias, any case) to its model and provider. An empty
  // name means default_model(). Throws Error(validation_error) for an unknown
  // model (listing close matches) or one excluded by *_ALLOWED_MODELS, and
  // Error(provider_unavailable) when its provider is not configured.
  ResolvedModel resolve_model(std::string_view name) const;

  // The model used when a call names none: "auto" (the default), or
  // DEFAULT_MODEL when its provider is available, else the first allowed
  // model of the first available provider, else the DEFAULT_MODEL value.
  const std::string& default_model() const noexcept { return default_model_; }

  // The models `auto` picks from (GLM_SPEED_MODEL, ...).
  const RoutingModels& routing() const noexcept { return routing_; }

  // Configuration remarks worth a warning at start-up (e.g. DEFAULT_MODEL
  // names a model of an unconfigured provider). Never contains a key.
  const std::vector<std::string>& warnings() const noexcept { return warnings_; }

  // "Providers configured: KIMI, GLM; GLM models: 6; Kimi models: 18", or
  // "Providers configured: none" — the start-up log line.
  std::string summary() const;

  const ModelCatalog& catalog() const noexcept { return *catalog_; }

private:
  ProviderRegistry() = default;

  const ModelCatalog* catalog_ = nullptr;
  std::vector<ProviderConfig> providers_;
  std::string default_model_;
  RoutingModels routing_;
  std::vector<std::string> warnings_;
};

// The process-wide registry, built from `settings` by the first caller,
// exactly once however many threads race (a function-local OnceValue).
// Calling again with the same effective settings returns the same object;
// with different settings throws std::logic_error (one process, one
// provider configuration). Prefer passing a registry by reference; this
// exists for the composition root.
const ProviderRegistry& init_process_providers(const Settings& settings);

// The registry init_process_providers() built; std::logic_error before it ran.
const ProviderRegistry& process_providers();

// How many times the process registry's builder has run (0 or 1; for tests).
std::size_t process_providers_build_count() noexcept;

} // namespace exai::core
