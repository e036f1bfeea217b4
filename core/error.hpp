#pragma once

#include <nlohmann/json.hpp>

#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace exai::core {

// Stable error codes. Numbers are never reused or renumbered; they appear in
// logs and man/exai.1. The protocol name (protocol_code) is what clients see.
enum class Errc : int {
  invalid_request = 1,
  validation_error = 2,
  unauthorized = 3,
  tool_not_found = 4,
  over_capacity = 5,
  timeout = 6,
  cancelled = 7,
  duplicate = 8,
  provider_error = 9,
  provider_unavailable = 10,
  tool_execution_error = 11,
  protocol_error = 12,
  shutting_down = 13,
  internal_error = 14,
  config_invalid = 15,
  upstream_failed = 16,
  already_running = 17, // another daemon holds the state directory
  resend_prompt = 18,   // the prompt is over the transport limit: send it as a file
};

// The wire name of `code`, e.g. "OVER_CAPACITY". config_invalid maps to
// "VALIDATION_ERROR" and upstream_failed to "PROVIDER_ERROR".
std::string_view protocol_code(Errc code) noexcept;

// A failure that aborts the current operation (STYLE B4). Expected outcomes
// are values, not exceptions.
class Error : public std::runtime_error {
public:
  Error(Errc code, const std::string& message, nlohmann::json details = nlohmann::json::object())
      : std::runtime_error(message)
      , code_(code)
      , details_(std::move(details))
  {
  }

  Errc code() const noexcept { return code_; }
  // What a client may be told beyond the message (field, value, rule...).
  const nlohmann::json& details() const noexcept { return details_; }

private:
  Errc code_;
  nlohmann::json details_;
};

} // namespace exai::core
