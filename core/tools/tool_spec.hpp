#pragma once

// What a tool is, as data: name, texts for clients, its model class, its own
// argument fields and which common fields it takes. Schemas for list_tools
// and tools/list are generated from it (with the configured models), and the
// same schema checks every call's arguments.

#include "core/providers/model_routing.hpp"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace exai::core {

class ProviderRegistry;

// The common argument fields (the original daemon's contract), as bits.
namespace field {
inline constexpr unsigned kModel = 1U << 0U;          // model: enum of usable names + auto
inline constexpr unsigned kTemperature = 1U << 1U;    // temperature: 0..1
inline constexpr unsigned kThinkingMode = 1U << 2U;   // thinking_mode: minimal..max
inline constexpr unsigned kUseWebsearch = 1U << 3U;   // use_websearch: boolean
inline constexpr unsigned kContinuationId = 1U << 4U; // continuation_id: string
inline constexpr unsigned kFiles = 1U << 5U;          // files: absolute paths
inline constexpr unsigned kImages = 1U << 6U;         // images: absolute paths or data: URLs
inline constexpr unsigned kModelCall = kModel | kTemperature | kThinkingMode | kUseWebsearch;
} // namespace field

// The transport limit of a prompt (the original's MCP_PROMPT_SIZE_LIMIT):
// longer prompts get RESEND_PROMPT, asking the client to send a file.
inline constexpr std::size_t kMaxPromptChars = 100000;
inline constexpr std::size_t kMaxFilesPerCall = 100;
inline constexpr std::size_t kMaxImagesPerCall = 10;

struct ToolSpec {
  std::string name;
  std::string title;       // MCP title
  std::string description; // what it does and when to use it
  ModelClass model_class = ModelClass::none;
  bool read_only = true;            // MCP readOnlyHint: changes nothing outside exai
  double default_temperature = 0.5; // sent when the call gives none
  unsigned common = 0;              // field:: bits
  nlohmann::json properties = nlohmann::json::object(); // the tool's own fields
  std::vector<std::string> required{}; // {}: a designated initializer may leave it out
};

// The inputSchema: the tool's fields plus its common fields, exact types and
// ranges, additionalProperties false. `model` lists the names usable with
// `providers` (canonical and aliases) plus auto, states the default and
// describes each model with its context window.
nlohmann::json input_schema(const ToolSpec& spec, const ProviderRegistry& providers);

// The outputSchema of every tool: the result envelope (status, content,
// content_type, metadata, continuation_offer), which MCP results also carry
// as structuredContent.
const nlohmann::json& envelope_output_schema();

} // namespace exai::core
