#include "core/tools/argument_check.hpp"

#include "core/error.hpp"
#include "core/util/text.hpp"

#include <cmath>
#include <string>

namespace exai::core {

namespace {

using nlohmann::json;

constexpr std::size_t kShownValueBytes = 80;

// The value as the client sent it, short enough for one error line.
std::string
shown(const json& value)
{
  return printable(value.dump(-1, ' ', false, json::error_handler_t::replace), kShownValueBytes);
}

[[noreturn]] void
fail(const std::string& path, const json& value, const std::string& rule)
{
  throw Error(Errc::validation_error,
              "argument '" + path + "' = " + shown(value) + " is invalid: " + rule,
              {{"field", path}, {"value", shown(value)}, {"rule", rule}});
}

bool
has_type(const json& value, std::string_view type)
{
  if (type == "string") {
    return value.is_string();
  }
  if (type == "integer") {
    return value.is_number_integer() ||
           (value.is_number_float() && std::isfinite(value.get<double>()) &&
            std::floor(value.get<double>()) == value.get<double>());
  }
  if (type == "number") {
    return value.is_number() && (!value.is_number_float() || std::isfinite(value.get<double>()));
  }
  if (type == "boolean") {
    return value.is_boolean();
  }
  if (type == "array") {
    return value.is_array();
  }
  if (type == "object") {
    return value.is_object();
  }
  return true;
}

std::string
number_text(const json& bound)
{
  return bound.dump();
}

void check_value(const std::string& tool,
                 const std::string& path,
                 const json& schema,
                 const json& value);

void
check_object(const std::string& tool,
             const std::string& path,
             const json& schema,
             const json& value)
{
  const json empty = json::object();
  const auto props_it = schema.find("properties");
  const json& properties = props_it != schema.end() ? *props_it : empty;
  const std::string prefix = path.empty() ? "" : path + ".";
  if (const auto required = schema.find("required"); required != schema.end()) {
    for (const auto& name : *required) {
      const auto it = value.find(name.get<std::string>());
      if (it == value.end() || it->is_null()) {
        throw Error(Errc::validation_error,
                    "argument '" + prefix + name.get<std::string>() + "' is required",
                    {{"field", prefix + name.get<std::string>()}, {"rule", "required"}});
      }
    }
  }
  const auto additional = schema.find("additionalProperties");
  const bool closed =
      additional != schema.end() && additional->is_boolean() && !additional->get<bool>();
  for (const auto& [name, item] : value.items()) {
    const auto property = properties.find(name);
    if (property == properties.end()) {
      if (closed) {
        std::string allowed;
        for (const auto& [known, unused] : properties.items()) {
          allowed += (allowed.empty() ? "" : ", ") + known;
        }
        throw Error(Errc::validation_error,
                    "argument '" + prefix + printable(name, kShownValueBytes) +
                        "' is not accepted by " + tool + "; allowed: " + allowed,
                    {{"field", prefix + printable(name, kShownValueBytes)},
                     {"rule", "additionalProperties"},
                     {"allowed", properties.is_object() ? json(allowed) : json("")}});
      }
      continue;
    }
    if (!item.is_null()) {
      check_value(tool, prefix + name, *property, item);
    }
  }
}

void
check_value(const std::string& tool, const std::string& path, const json& schema, const json& value)
{
  if (const auto type = schema.find("type"); type != schema.end() && type->is_string()) {
    if (!has_type(value, type->get<std::string>())) {
      fail(path,
           value,
           "must be " + std::string(type->get<std::string>() == "integer" ? "an " : "a ") +
               type->get<std::string>());
    }
  }
  if (const auto choices = schema.find("enum"); choices != schema.end()) {
    bool found = false;
    std::string listed;
    for (const auto& choice : *choices) {
      found = found || choice == value;
      listed += (listed.empty() ? "" : ", ") +
                (choice.is_string() ? choice.get<std::string>() : choice.dump());
    }
    if (!found) {
      fail(path, value, "must be one of: " + listed);
    }
  }
  if (value.is_number()) {
    const double number = value.get<double>();
    const auto minimum = schema.find("minimum");
    const auto maximum = schema.find("maximum");
    const bool low = minimum != schema.end() && number < minimum->get<double>();
    const bool high = maximum != schema.end() && number > maximum->get<double>();
    if (low || high) {
      std::string rule = "must be ";
      if (minimum != schema.end() && maximum != schema.end()) {
        rule += "from " + number_text(*minimum) + " to " + number_text(*maximum);
      } else if (minimum != schema.end()) {
        rule += "at least " + number_text(*minimum);
      } else {
        rule += "at most " + number_text(*maximum);
      }
      fail(path, value, rule);
    }
  }
  if (value.is_string()) {
    const std::size_t length = value.get_ref<const std::string&>().size();
    if (const auto min = schema.find("minLength");
        min != schema.end() && length < min->get<std::size_t>()) {
      fail(path,
           value,
           min->get<std::size_t>() == 1 ? "must not be empty"
                                        : "must have at least " + min->dump() + " characters");
    }
    if (const auto max = schema.find("maxLength");
        max != schema.end() && length > max->get<std::size_t>()) {
      fail(path, value, "must have at most " + max->dump() + " characters");
    }
  }
  if (value.is_array()) {
    if (const auto min = schema.find("minItems");
        min != schema.end() && value.size() < min->get<std::size_t>()) {
      fail(path,
           value,
           "must have at least " + min->dump() + " item" +
               (min->get<std::size_t>() == 1 ? "" : "s"));
    }
    if (const auto max = schema.find("maxItems");
        max != schema.end() && value.size() > max->get<std::size_t>()) {
      fail(path, value, "must have at most " + max->dump() + " items");
    }
    if (const auto items = schema.find("items"); items != schema.end()) {
      for (std::size_t i = 0; i < value.size(); ++i) {
        check_value(tool, path + "[" + std::to_string(i) + "]", *items, value[i]);
      }
    }
  }
  if (value.is_object()) {
    check_object(tool, path, schema, value);
  }
}

} // namespace

void
check_arguments(std::string_view tool, const json& schema, const json& arguments)
{
  const std::string name(tool);
  if (!arguments.is_object()) {
    fail("arguments", arguments, "must be an object");
  }
  check_object(name, "", schema, arguments);
}

} // namespace exai::core
