#pragma once

// Checks a call's arguments against the tool's generated JSON Schema, so the
// schema a client reads is exactly the rule the daemon applies. Covers the
// subset exai generates: type (string, integer, number, boolean, array,
// object), enum, minimum/maximum, minLength/maxLength, minItems/maxItems,
// items, properties, required, additionalProperties:false.

#include <nlohmann/json.hpp>

#include <string_view>

namespace exai::core {

// Throws Error(validation_error) at the first violation, naming the argument
// (a path like files[2] or models[0].stance), the value and the rule; an
// unknown argument lists the ones `tool` accepts. Null counts as absent.
void check_arguments(std::string_view tool,
                     const nlohmann::json& schema,
                     const nlohmann::json& arguments);

} // namespace exai::core
