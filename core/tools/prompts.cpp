#include "core/tools/prompts.hpp"

#include "core/error.hpp"

#include <string>

namespace exai::core::prompts {

std::string_view
get(std::string_view name)
{
  for (const auto& prompt : all()) {
    if (prompt.name == name) {
      return prompt.text;
    }
  }
  throw Error(Errc::internal_error, "no system prompt named " + std::string(name));
}

} // namespace exai::core::prompts
