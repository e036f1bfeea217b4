#include "core/error.hpp"

namespace exai::core {

std::string_view
protocol_code(Errc code) noexcept
{
  switch (code) {
  case Errc::invalid_request:
    return "INVALID_REQUEST";
  case Errc::validation_error:
  case Errc::config_invalid:
    return "VALIDATION_ERROR";
  case Errc::unauthorized:
    return "UNAUTHORIZED";
  case Errc::tool_not_found:
    return "TOOL_NOT_FOUND";
  case Errc::over_capacity:
    return "OVER_CAPACITY";
  case Errc::timeout:
    return "TIMEOUT";
  case Errc::cancelled:
    return "CANCELLED";
  case Errc::duplicate:
    return "DUPLICATE";
  case Errc::provider_error:
  case Errc::upstream_failed:
    return "PROVIDER_ERROR";
  case Errc::provider_unavailable:
    return "PROVIDER_UNAVAILABLE";
  case Errc::tool_execution_error:
    return "TOOL_EXECUTION_ERROR";
  case Errc::protocol_error:
    return "PROTOCOL_ERROR";
  case Errc::shutting_down:
    return "SHUTTING_DOWN";
  case Errc::resend_prompt:
    return "RESEND_PROMPT";
  case Errc::internal_error:
  case Errc::already_running:
    return "INTERNAL_ERROR";
  }
  return "INTERNAL_ERROR";
}

} // namespace exai::core
