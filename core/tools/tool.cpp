#include "core/tools/tool.hpp"

#include <cmath>

namespace exai::core {

CallPlan
Tool::plan(const nlohmann::json& /*arguments*/, const ProviderRegistry& /*providers*/) const
{
  return {};
}

std::string
envelope(std::string_view tool_name,
         std::string_view content,
         std::string_view content_type,
         nlohmann::json metadata,
         nlohmann::json continuation_offer)
{
  metadata["tool_name"] = tool_name;
  const bool has_offer = !continuation_offer.is_null();
  const nlohmann::json out = {
      {"status", has_offer ? "continuation_available" : "success"},
      {"content", content},
      {"content_type", content_type},
      {"metadata", std::move(metadata)},
      {"continuation_offer", std::move(continuation_offer)},
  };
  return out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

namespace {

[[noreturn]] void
bad_arg(std::string_view name, std::string_view expected)
{
  throw Error(Errc::validation_error,
              "argument '" + std::string(name) + "' must be " + std::string(expected));
}

const nlohmann::json*
find_arg(const nlohmann::json& arguments, std::string_view name)
{
  const auto it = arguments.find(name);
  if (it == arguments.end() || it->is_null()) {
    return nullptr;
  }
  return &*it;
}

} // namespace

std::optional<std::string>
string_arg(const nlohmann::json& arguments, std::string_view name)
{
  const auto* value = find_arg(arguments, name);
  if (value == nullptr) {
    return std::nullopt;
  }
  if (!value->is_string()) {
    bad_arg(name, "a string");
  }
  return value->get<std::string>();
}

std::optional<double>
number_arg(const nlohmann::json& arguments, std::string_view name, double min, double max)
{
  const auto* value = find_arg(arguments, name);
  if (value == nullptr) {
    return std::nullopt;
  }
  if (!value->is_number()) {
    bad_arg(name, "a number");
  }
  const double number = value->get<double>();
  if (!std::isfinite(number) || number < min || number > max) {
    bad_arg(name, "a number from " + std::to_string(min) + " to " + std::to_string(max));
  }
  return number;
}

std::optional<int>
int_arg(const nlohmann::json& arguments, std::string_view name, int min, int max)
{
  const auto* value = find_arg(arguments, name);
  if (value == nullptr) {
    return std::nullopt;
  }
  if (!value->is_number_integer()) {
    bad_arg(name, "an integer");
  }
  const auto number = value->get<std::int64_t>();
  if (number < min || number > max) {
    bad_arg(name, "an integer from " + std::to_string(min) + " to " + std::to_string(max));
  }
  return static_cast<int>(number);
}

} // namespace exai::core
