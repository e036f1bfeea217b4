#pragma once

// What end-to-end tests ask a running `exai serve`: plain HTTP, its health
// document, whether every permit came back, and one call's result.

#include "tests/support/ws_client.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace exai::test {

// One HTTP answer, and how long it took to come.
struct HttpAnswer {
  int status = 0;
  std::string body;
  std::chrono::milliseconds took{0};
};

// One HTTP/1.1 request without a body to 127.0.0.1:port (10 s timeout), with
// `Authorization: Bearer token` when a token is given.
HttpAnswer http_request(std::uint16_t port,
                        const std::string& method,
                        const std::string& path,
                        const std::string& token = {});

// GET /health on 127.0.0.1:port, with `Authorization: Bearer token` when a
// token is given. Throws when the daemon does not answer with JSON.
nlohmann::json fetch_health(std::uint16_t port, const std::string& token = {});

// Waits until nothing is in flight or queued and every capacity scope (global,
// sessions, each provider) reads zero in use and zero waiting: no leaked
// permit. False at the deadline (the last document is logged with UNSCOPED_INFO).
bool capacity_back_to_zero(std::uint16_t port,
                           const std::string& token = {},
                           std::chrono::milliseconds limit = std::chrono::seconds(20));

// Sends call_tool and waits for its call_tool_ack: the call is running (or
// queued). False at the deadline.
bool start_call(WsClient& client,
                const std::string& request_id,
                const std::string& tool,
                const nlohmann::json& arguments,
                std::chrono::milliseconds limit = std::chrono::seconds(5));

// Sends call_tool and returns its call_tool_res; nullopt at the deadline.
std::optional<nlohmann::json> call_tool(WsClient& client,
                                        const std::string& request_id,
                                        const std::string& tool,
                                        const nlohmann::json& arguments,
                                        std::chrono::milliseconds limit = std::chrono::seconds(20));

// The JSON envelope in a successful result's first output (REQUIREs one).
nlohmann::json result_envelope(const nlohmann::json& result);

} // namespace exai::test
