#pragma once

// The system prompts of the model-calling tools. Each is a text file in
// core/tools/prompts/ (reviewed like code), compiled into the binary.

#include <string_view>
#include <vector>

namespace exai::core::prompts {

struct Prompt {
  std::string_view name; // the file name without .txt
  std::string_view text;
};

// Every prompt, by name order.
const std::vector<Prompt>& all();

// The prompt `name`; throws Error(internal_error) when there is none (a
// build without its file is a bug, caught by the tests).
std::string_view get(std::string_view name);

} // namespace exai::core::prompts
