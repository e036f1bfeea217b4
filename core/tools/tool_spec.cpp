#include "core/tools/tool_spec.hpp"

#include "core/providers/providers.hpp"

namespace exai::core {

namespace {

using nlohmann::json;

std::string
context_text(int tokens)
{
  return tokens >= 1024 ? std::to_string(tokens / 1024) + "K" : std::to_string(tokens);
}

json
model_field(const ProviderRegistry& providers)
{
  json names = json::array({std::string(kAutoModel)});
  std::string listing;
  for (const ProviderConfig* provider : providers.configured()) {
    for (const ModelInfo* model : provider->models) {
      names.push_back(model->name);
      for (const auto& alias : model->aliases) {
        names.push_back(alias);
      }
      listing += "\n- " + model->name + " (" + provider->display_name + ", " +
                 context_text(model->context_window) + " context" +
                 (model->capabilities.images ? ", images" : "") +
                 (model->capabilities.thinking ? ", thinking" : "") + "): " + model->description;
    }
  }
  const auto& routing = providers.routing();
  std::string description =
      "Model to use. 'auto' (default: " + providers.default_model() +
      ") picks per tool: fast tools " + routing.glm_speed + " (else " + routing.kimi_speed +
      "), deep analysis " + routing.kimi_quality + " (else " + routing.glm_quality +
      "), and moves once to the other provider if the first is unavailable. A continued "
      "conversation keeps its model. Available:";
  description += listing.empty() ? " none (no provider configured)" : listing;
  return {{"type", "string"},
          {"enum", std::move(names)},
          {"default", providers.default_model()},
          {"description", std::move(description)}};
}

} // namespace

json
input_schema(const ToolSpec& spec, const ProviderRegistry& providers)
{
  json properties = spec.properties;
  if ((spec.common & field::kModel) != 0U) {
    properties["model"] = model_field(providers);
  }
  if ((spec.common & field::kTemperature) != 0U) {
    properties["temperature"] = {{"type", "number"},
                                 {"minimum", 0},
                                 {"maximum", 1},
                                 {"default", spec.default_temperature},
                                 {"description",
                                  "Creativity from 0 (deterministic) to 1 (default " +
                                      json(spec.default_temperature).dump() + ")"}};
  }
  if ((spec.common & field::kThinkingMode) != 0U) {
    properties["thinking_mode"] = {
        {"type", "string"},
        {"enum", {"minimal", "low", "medium", "high", "max"}},
        {"description",
         "Reasoning depth. GLM thinking models get thinking on (off for minimal); under auto, "
         "high and max choose a thinking model"}};
  }
  if ((spec.common & field::kUseWebsearch) != 0U) {
    properties["use_websearch"] = {
        {"type", "boolean"},
        {"default", false},
        {"description", "Let the model search the web (Kimi $web_search, GLM web_search)"}};
  }
  if ((spec.common & field::kContinuationId) != 0U) {
    properties["continuation_id"] = {
        {"type", "string"},
        {"minLength", 1},
        {"maxLength", 128},
        {"description", "Continue the conversation this id names (from an earlier reply)"}};
  }
  if ((spec.common & field::kFiles) != 0U) {
    properties["files"] = {
        {"type", "array"},
        {"items", {{"type", "string"}, {"minLength", 1}, {"maxLength", 4096}}},
        {"maxItems", kMaxFilesPerCall},
        {"description",
         "Absolute paths of files or directories (under EXAI_FILE_ROOTS) to send with line "
         "numbers; directories expand recursively. Prefer this over pasting code"}};
  }
  if ((spec.common & field::kImages) != 0U) {
    properties["images"] = {
        {"type", "array"},
        {"items", {{"type", "string"}, {"minLength", 1}}},
        {"maxItems", kMaxImagesPerCall},
        {"description",
         "Absolute image paths (png, jpeg, gif, webp; under EXAI_FILE_ROOTS) or data: URLs, for "
         "vision models"}};
  }
  json schema = {{"type", "object"},
                 {"title", spec.title},
                 {"properties", std::move(properties)},
                 {"additionalProperties", false}};
  if (!spec.required.empty()) {
    schema["required"] = spec.required;
  }
  return schema;
}

const json&
envelope_output_schema()
{
  static const json schema = {
      {"type", "object"},
      {"properties",
       {{"status", {{"type", "string"}}},
        {"content", {{"type", "string"}}},
        {"content_type", {{"type", "string"}, {"enum", {"text", "markdown", "json"}}}},
        {"metadata", {{"type", "object"}}},
        {"continuation_offer",
         {{"type", {"object", "null"}},
          {"properties",
           {{"continuation_id", {{"type", "string"}}},
            {"remaining_turns", {{"type", "integer"}}},
            {"note", {{"type", "string"}}}}}}}}},
      {"required", {"status", "content", "content_type", "metadata"}}};
  return schema;
}

} // namespace exai::core
