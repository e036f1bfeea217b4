#include "core/providers/providers.hpp"

#include "core/error.hpp"
#include "core/util/once.hpp"
#include "core/util/text.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <stdexcept>
#include <utility>

namespace exai::core {

namespace {

// " (closest: a, b)" for an unknown model name, or "" when nothing is close.
std::string
closest_hint(const ModelCatalog& catalog, std::string_view name)
{
  const auto matches = catalog.close_matches(name);
  if (matches.empty()) {
    return {};
  }
  std::string hint = " (closest: ";
  for (std::size_t i = 0; i < matches.size(); ++i) {
    hint += (i == 0 ? "" : ", ") + matches[i];
  }
  return hint + ")";
}

constexpr long kMinTimeoutSecs = 1;
constexpr long kMaxTimeoutSecs = 3600;

struct ProviderSpec {
  std::string_view id;
  std::string_view display_name;
  std::string_view key_variable;
  std::string_view fallback_key_variable;
  std::string_view placeholder;
  std::string_view url_variable;
  std::string_view default_url;
  std::string_view timeout_variable;
  long default_timeout_secs;
  std::string_view models_variable;
};

// The provider table: adding a provider is one row here plus its catalog entries.
constexpr ProviderSpec kSpecs[] = {
    {kKimiProviderId,
     "KIMI",
     "KIMI_API_KEY",
     "MOONSHOT_API_KEY",
     "your_kimi_api_key_here",
     "KIMI_API_URL",
     kDefaultKimiUrl,
     "KIMI_TIMEOUT_SECS",
     180,
     "KIMI_ALLOWED_MODELS"},
    {kGlmProviderId,
     "GLM",
     "GLM_API_KEY",
     "ZHIPUAI_API_KEY",
     "your_glm_api_key_here",
     "GLM_API_URL",
     kDefaultGlmUrl,
     "GLM_TIMEOUT_SECS",
     120,
     "GLM_ALLOWED_MODELS"},
};

// Splits a comma-separated list, trimming and dropping empty items.
std::vector<std::string>
split_list(std::string_view text)
{
  std::vector<std::string> items;
  while (true) {
    const auto comma = text.find(',');
    const auto item = trim(text.substr(0, comma));
    if (!item.empty()) {
      items.emplace_back(item);
    }
    if (comma == std::string_view::npos) {
      break;
    }
    text.remove_prefix(comma + 1);
  }
  return items;
}

// "kimi"/"moonshot" -> "kimi", "glm"/"zhipuai"/"zhipu" -> "glm"; empty if unknown.
std::string_view
canonical_provider(std::string_view name)
{
  const std::string lower = to_lower_ascii(trim(name));
  if (lower == "kimi" || lower == "moonshot") {
    return kKimiProviderId;
  }
  if (lower == "glm" || lower == "zhipuai" || lower == "zhipu") {
    return kGlmProviderId;
  }
  return {};
}

std::vector<std::string_view>
provider_list(const Settings& settings, std::string_view variable)
{
  std::vector<std::string_view> ids;
  const auto value = settings.get(variable);
  if (!value) {
    return ids;
  }
  for (const auto& item : split_list(*value)) {
    const auto id = canonical_provider(item);
    if (id.empty()) {
      throw Error(Errc::config_invalid,
                  std::string(variable) + "=" + *value + " is invalid: unknown provider '" + item +
                      "' (allowed: kimi, glm)");
    }
    ids.push_back(id);
  }
  return ids;
}

bool
contains(const std::vector<std::string_view>& ids, std::string_view id)
{
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

std::string
read_key(const Settings& settings, const ProviderSpec& spec, std::string& variable)
{
  for (const auto name : {spec.key_variable, spec.fallback_key_variable}) {
    auto value = settings.get(name);
    if (!value) {
      continue;
    }
    const std::string key(trim(*value));
    if (key.empty() || to_lower_ascii(key) == spec.placeholder) {
      continue; // counts as absent: try the fallback
    }
    variable = std::string(name);
    return key;
  }
  return {};
}

std::string
read_url(const Settings& settings, const ProviderSpec& spec)
{
  std::string url(
      trim(settings.get_nonempty(spec.url_variable).value_or(std::string(spec.default_url))));
  const std::string lower = to_lower_ascii(url);
  const bool http = lower.rfind("http://", 0) == 0 && url.size() > 7;
  const bool https = lower.rfind("https://", 0) == 0 && url.size() > 8;
  if (!http && !https) {
    throw Error(Errc::config_invalid,
                std::string(spec.url_variable) + "=" + url +
                    " is invalid: expected an http:// or https:// URL");
  }
  while (!url.empty() && url.back() == '/') {
    url.pop_back();
  }
  return url;
}

std::chrono::seconds
read_timeout(const Settings& settings, const ProviderSpec& spec)
{
  const auto value = settings.get_nonempty(spec.timeout_variable);
  if (!value) {
    return std::chrono::seconds(spec.default_timeout_secs);
  }
  const std::string_view text = trim(*value);
  long seconds = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), seconds);
  if (ec != std::errc() || end != text.data() + text.size() || seconds < kMinTimeoutSecs ||
      seconds > kMaxTimeoutSecs) {
    throw Error(Errc::config_invalid,
                std::string(spec.timeout_variable) + "=" + *value +
                    " is invalid: expected an integer number of seconds in [" +
                    std::to_string(kMinTimeoutSecs) + ", " + std::to_string(kMaxTimeoutSecs) + "]");
  }
  return std::chrono::seconds(seconds);
}

void
apply_restriction(const Settings& settings,
                  const ProviderSpec& spec,
                  const ModelCatalog& catalog,
                  ProviderConfig& provider)
{
  const auto value = settings.get(spec.models_variable);
  const auto entries = value ? split_list(*value) : std::vector<std::string>{};
  for (const auto& entry : entries) {
    const ModelInfo* info = catalog.find(entry);
    if (info == nullptr || info->provider_id != spec.id) {
      std::string message = std::string(spec.models_variable) + "=" + *value + " is invalid: '" +
                            entry + "' is not a " + std::string(spec.display_name) + " model";
      message += closest_hint(catalog, entry);
      throw Error(Errc::config_invalid, message);
    }
    if (std::find(provider.restriction.begin(), provider.restriction.end(), info->name) ==
        provider.restriction.end()) {
      provider.restriction.push_back(info->name);
    }
  }
  for (const auto& info : catalog.models()) {
    if (info.provider_id != spec.id) {
      continue;
    }
    if (!provider.restriction.empty() &&
        std::find(provider.restriction.begin(), provider.restriction.end(), info.name) ==
            provider.restriction.end()) {
      continue;
    }
    provider.models.push_back(&info);
    provider.name_count += 1 + info.aliases.size();
  }
}

} // namespace

ProviderRegistry
ProviderRegistry::build(const Settings& settings, const ModelCatalog& catalog)
{
  ProviderRegistry registry;
  registry.catalog_ = &catalog;
  const auto allowed = provider_list(settings, "ALLOWED_PROVIDERS");
  const auto disabled = provider_list(settings, "DISABLED_PROVIDERS");
  for (const auto& spec : kSpecs) {
    ProviderConfig provider;
    provider.id = std::string(spec.id);
    provider.display_name = std::string(spec.display_name);
    provider.api_key = read_key(settings, spec, provider.key_variable);
    provider.base_url = read_url(settings, spec);
    provider.read_timeout = read_timeout(settings, spec);
    apply_restriction(settings, spec, catalog, provider);
    if (contains(disabled, spec.id)) {
      provider.enabled = false;
      provider.disabled_reason = "listed in DISABLED_PROVIDERS";
    } else if (!allowed.empty() && !contains(allowed, spec.id)) {
      provider.enabled = false;
      provider.disabled_reason = "not listed in ALLOWED_PROVIDERS";
    } else if (!provider.key_present()) {
      provider.disabled_reason = "no API key (" + std::string(spec.key_variable) + " or " +
                                 std::string(spec.fallback_key_variable) + ")";
    }
    registry.providers_.push_back(std::move(provider));
  }

  registry.routing_ = RoutingModels::read(settings, catalog);
  const auto wanted = settings.get_nonempty("DEFAULT_MODEL");
  const std::string default_name(trim(wanted.value_or(std::string(kDefaultModel))));
  if (is_auto_model(default_name)) {
    registry.default_model_ = std::string(kAutoModel);
    return registry;
  }
  const ModelInfo* info = catalog.find(default_name);
  if (info == nullptr && wanted) {
    std::string message =
        "DEFAULT_MODEL=" + *wanted + " is invalid: expected auto or a model from the catalog";
    message += closest_hint(catalog, default_name);
    throw Error(Errc::config_invalid, message);
  }
  registry.default_model_ = info != nullptr ? info->name : default_name;
  const auto usable = [&registry](const ModelInfo* model) {
    const ProviderConfig* provider = registry.find(model->provider_id);
    return provider != nullptr && provider->available() &&
           std::find(provider->models.begin(), provider->models.end(), model) !=
               provider->models.end();
  };
  if (info != nullptr && !usable(info)) {
    for (const auto* provider : registry.configured()) {
      if (!provider->models.empty()) {
        if (wanted) { // only an explicit DEFAULT_MODEL deserves a warning
          registry.warnings_.push_back("DEFAULT_MODEL=" + info->name + " is not available; using " +
                                       provider->models.front()->name);
        }
        registry.default_model_ = provider->models.front()->name;
        break;
      }
    }
  }
  return registry;
}

std::vector<const ProviderConfig*>
ProviderRegistry::configured() const
{
  std::vector<const ProviderConfig*> out;
  for (const auto& provider : providers_) {
    if (provider.available()) {
      out.push_back(&provider);
    }
  }
  return out;
}

const ProviderConfig*
ProviderRegistry::find(std::string_view id) const
{
  const auto canonical = canonical_provider(id);
  for (const auto& provider : providers_) {
    if (provider.id == canonical) {
      return &provider;
    }
  }
  return nullptr;
}

bool
ProviderRegistry::any_configured() const
{
  return std::any_of(
      providers_.begin(), providers_.end(), [](const auto& p) { return p.available(); });
}

ResolvedModel
ProviderRegistry::resolve_model(std::string_view name) const
{
  const std::string_view wanted = trim(name).empty() ? std::string_view(default_model_) : name;
  const ModelInfo& info = catalog_->resolve(wanted);
  const ProviderConfig* provider = find(info.provider_id);
  if (provider == nullptr || !provider->available()) {
    throw Error(Errc::provider_unavailable,
                "model " + info.name + " needs provider " +
                    (provider != nullptr ? provider->display_name : info.provider_id) +
                    ", which is not available: " +
                    (provider != nullptr ? provider->disabled_reason : std::string("unknown")));
  }
  if (std::find(provider->models.begin(), provider->models.end(), &info) ==
      provider->models.end()) {
    std::string message =
        "model " + info.name + " is not allowed by " +
        (provider->id == kKimiProviderId ? "KIMI_ALLOWED_MODELS" : "GLM_ALLOWED_MODELS") +
        "; allowed: ";
    for (std::size_t i = 0; i < provider->models.size(); ++i) {
      message += (i == 0 ? "" : ", ") + provider->models[i]->name;
    }
    throw Error(Errc::validation_error, message);
  }
  return ResolvedModel{provider, &info};
}

std::string
ProviderRegistry::summary() const
{
  const auto available = configured();
  if (available.empty()) {
    return "Providers configured: none";
  }
  std::string line = "Providers configured: ";
  for (std::size_t i = 0; i < available.size(); ++i) {
    line += (i == 0 ? "" : ", ") + available[i]->display_name;
  }
  // Order of the Python daemon's line: GLM count first, then Kimi.
  if (const auto* glm = find(kGlmProviderId); glm != nullptr && glm->available()) {
    line += "; GLM models: " + std::to_string(glm->name_count);
  }
  if (const auto* kimi = find(kKimiProviderId); kimi != nullptr && kimi->available()) {
    line += "; Kimi models: " + std::to_string(kimi->name_count);
  }
  return line;
}

namespace {

std::atomic<std::size_t>&
build_counter()
{
  static std::atomic<std::size_t> count{0};
  return count;
}

struct ProcessProviders {
  Settings::Map settings;
  ProviderRegistry registry;
};

OnceValue<ProcessProviders>&
process_slot()
{
  static OnceValue<ProcessProviders> slot;
  return slot;
}

} // namespace

const ProviderRegistry&
init_process_providers(const Settings& settings)
{
  auto wanted = settings.effective();
  const ProcessProviders& built = process_slot().get([&] {
    build_counter().fetch_add(1);
    return ProcessProviders{wanted, ProviderRegistry::build(settings)};
  });
  if (built.settings != wanted) {
    throw std::logic_error(
        "providers: the process registry is already built from different settings");
  }
  return built.registry;
}

const ProviderRegistry&
process_providers()
{
  const ProcessProviders* built = process_slot().peek();
  if (built == nullptr) {
    throw std::logic_error("providers: process_providers() before init_process_providers()");
  }
  return built->registry;
}

std::size_t
process_providers_build_count() noexcept
{
  return build_counter().load();
}

} // namespace exai::core
