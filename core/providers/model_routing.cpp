#include "core/providers/model_routing.hpp"

#include "core/error.hpp"
#include "core/providers/providers.hpp"
#include "core/util/enum_names.hpp"
#include "core/util/text.hpp"

#include <algorithm>
#include <vector>

namespace exai::core {

namespace {

struct Candidate {
  std::string_view variable;
  const std::string* name;
  std::string_view provider;
};

std::vector<Candidate>
candidates(const RoutingModels& routing, const RouteNeeds& needs)
{
  switch (needs.model_class) {
  case ModelClass::kimi:
    return {{"KIMI_DEFAULT_MODEL", &routing.kimi_default, kKimiProviderId}};
  case ModelClass::deep:
    return {{"KIMI_QUALITY_MODEL", &routing.kimi_quality, kKimiProviderId},
            {"GLM_QUALITY_MODEL", &routing.glm_quality, kGlmProviderId}};
  case ModelClass::fast:
  case ModelClass::none:
    break;
  }
  if (needs.thinking) {
    return {{"KIMI_QUALITY_MODEL", &routing.kimi_quality, kKimiProviderId},
            {"GLM_QUALITY_MODEL", &routing.glm_quality, kGlmProviderId}};
  }
  return {{"GLM_SPEED_MODEL", &routing.glm_speed, kGlmProviderId},
          {"KIMI_SPEED_MODEL", &routing.kimi_speed, kKimiProviderId}};
}

bool
allowed(const ProviderConfig& provider, const ModelInfo* model)
{
  return model != nullptr &&
         std::find(provider.models.begin(), provider.models.end(), model) != provider.models.end();
}

bool
fits(const ModelInfo& model, const RouteNeeds& needs)
{
  return !needs.vision || model.capabilities.images;
}

// The provider's first allowed model that fits, a thinking one first when
// the call asks for thinking.
const ModelInfo*
substitute(const ProviderConfig& provider, const RouteNeeds& needs)
{
  const ModelInfo* any = nullptr;
  for (const ModelInfo* model : provider.models) {
    if (!fits(*model, needs)) {
      continue;
    }
    if (!needs.thinking || model->capabilities.thinking) {
      return model;
    }
    if (any == nullptr) {
      any = model;
    }
  }
  return any;
}

std::string
vision_models(const ProviderRegistry& providers)
{
  std::string names;
  for (const ProviderConfig* provider : providers.configured()) {
    for (const ModelInfo* model : provider->models) {
      if (model->capabilities.images) {
        names += (names.empty() ? "" : ", ") + model->name;
      }
    }
  }
  return names.empty() ? "none configured" : names;
}

ModelChoice
route(const ProviderRegistry& providers, const RouteNeeds& needs)
{
  struct Pick {
    ModelRef ref;
    std::string reason;
  };
  std::vector<Pick> picks;
  std::string refusals;
  for (const Candidate& candidate : candidates(providers.routing(), needs)) {
    const ProviderConfig* provider = providers.find(candidate.provider);
    if (provider == nullptr || !provider->available()) {
      refusals += std::string(refusals.empty() ? "" : "; ") + std::string(candidate.provider) +
                  ": " + (provider != nullptr ? provider->disabled_reason : "unknown provider");
      continue;
    }
    const ModelInfo* wanted = providers.catalog().find(*candidate.name);
    std::string reason = std::string(candidate.variable) + "=" + *candidate.name;
    const ModelInfo* model = wanted;
    if (!allowed(*provider, wanted) || !fits(*wanted, needs)) {
      model = substitute(*provider, needs);
      if (model != nullptr) {
        reason +=
            " -> " + model->name +
            (allowed(*provider, wanted) ? " (accepts images)" : " (allowed by the model list)");
      }
    }
    if (model == nullptr) {
      refusals += std::string(refusals.empty() ? "" : "; ") + provider->display_name +
                  ": no allowed model" + (needs.vision ? " accepts images" : "");
      continue;
    }
    picks.push_back({ModelRef{provider->id, model->name}, std::move(reason)});
  }
  if (picks.empty()) {
    throw Error(Errc::provider_unavailable,
                "model auto: no configured provider can serve a " +
                    std::string(model_class_name(needs.model_class)) + " call" +
                    (needs.vision ? " with images" : "") + " (" + refusals + ")");
  }
  ModelChoice choice;
  choice.automatic = true;
  choice.primary = picks.front().ref;
  choice.reason = "auto (" + std::string(model_class_name(needs.model_class)) + " class" +
                  (needs.thinking ? ", thinking" : "") + (needs.vision ? ", images" : "") +
                  "): " + picks.front().reason;
  if (picks.size() > 1) {
    choice.fallback = picks[1].ref;
  } else if (!refusals.empty()) {
    choice.reason += "; no fallback (" + refusals + ")";
  }
  return choice;
}

} // namespace

std::string_view
model_class_name(ModelClass model_class) noexcept
{
  static constexpr EnumNames<ModelClass, 4> kNames{{"none", "fast", "deep", "kimi"}, "fast"};
  return kNames(model_class);
}

RoutingModels
RoutingModels::read(const Settings& settings, const ModelCatalog& catalog)
{
  RoutingModels routing;
  const struct {
    std::string_view variable;
    std::string_view provider;
    std::string* value;
  } fields[] = {{"GLM_SPEED_MODEL", kGlmProviderId, &routing.glm_speed},
                {"KIMI_SPEED_MODEL", kKimiProviderId, &routing.kimi_speed},
                {"KIMI_QUALITY_MODEL", kKimiProviderId, &routing.kimi_quality},
                {"GLM_QUALITY_MODEL", kGlmProviderId, &routing.glm_quality},
                {"KIMI_DEFAULT_MODEL", kKimiProviderId, &routing.kimi_default}};
  for (const auto& field : fields) {
    const auto value = settings.get_nonempty(field.variable);
    if (!value) {
      continue;
    }
    const ModelInfo* model = catalog.find(*value);
    if (model == nullptr || model->provider_id != field.provider) {
      throw Error(Errc::config_invalid,
                  std::string(field.variable) + "=" + *value + " is invalid: expected a " +
                      to_lower_ascii(field.provider) + " model from the catalog (see listmodels)");
    }
    *field.value = model->name;
  }
  return routing;
}

bool
is_auto_model(std::string_view name)
{
  return to_lower_ascii(trim(name)) == kAutoModel;
}

ModelChoice
choose_model(const ProviderRegistry& providers, std::string_view requested, const RouteNeeds& needs)
{
  const std::string_view name = trim(requested).empty() ? providers.default_model() : requested;
  if (is_auto_model(name)) {
    return route(providers, needs);
  }
  const ResolvedModel resolved = providers.resolve_model(name);
  if (needs.vision && !resolved.model->capabilities.images) {
    throw Error(Errc::validation_error,
                "model " + resolved.model->name + " cannot take images; use a vision model (" +
                    vision_models(providers) + ") or model auto");
  }
  ModelChoice choice;
  choice.primary = ModelRef{resolved.provider->id, resolved.model->name};
  choice.reason = trim(requested).empty() ? "DEFAULT_MODEL=" + resolved.model->name
                                          : "requested " + resolved.model->name;
  return choice;
}

} // namespace exai::core
