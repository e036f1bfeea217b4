#include "core/config/settings.hpp"

namespace exai::core {

std::optional<std::string>
Settings::get(std::string_view key) const
{
  for (const Map* layer : {&flags_, &environment_, &env_file_}) {
    if (const auto it = layer->find(key); it != layer->end()) {
      return it->second;
    }
  }
  return std::nullopt;
}

std::optional<std::string>
Settings::get_nonempty(std::string_view key) const
{
  auto value = get(key);
  if (value && value->empty()) {
    return std::nullopt;
  }
  return value;
}

Settings
Settings::with_flag(std::string key, std::string value) const
{
  Settings copy = *this;
  copy.flags_[std::move(key)] = std::move(value);
  return copy;
}

Settings::Map
Settings::effective() const
{
  Map merged = env_file_;
  for (const Map* layer : {&environment_, &flags_}) {
    for (const auto& [key, value] : *layer) {
      merged[key] = value;
    }
  }
  return merged;
}

} // namespace exai::core
