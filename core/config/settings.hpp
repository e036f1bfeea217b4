#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace exai::core {

// Raw configuration values by variable name, layered by precedence:
// command-line flag > environment variable > env file > built-in default
// (defaults live with the typed readers in config.hpp). Immutable after
// construction; safe to share between threads.
class Settings {
public:
  using Map = std::map<std::string, std::string, std::less<>>;

  Settings() = default;
  Settings(Map flags, Map environment, Map env_file)
      : flags_(std::move(flags))
      , environment_(std::move(environment))
      , env_file_(std::move(env_file))
  {
  }

  // The highest-precedence value of `key`, or nullopt when no layer sets it.
  std::optional<std::string> get(std::string_view key) const;

  // Like get(), but an empty value counts as unset.
  std::optional<std::string> get_nonempty(std::string_view key) const;

  // Returns a copy with `key` set at flag precedence.
  Settings with_flag(std::string key, std::string value) const;

  // Every key any layer sets, with its highest-precedence value: what two
  // Settings must agree on to configure the same process.
  Map effective() const;

private:
  Map flags_;
  Map environment_;
  Map env_file_;
};

} // namespace exai::core
