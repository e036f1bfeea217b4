#pragma once

// The operator view's tests (the page's snapshot, `exai top`): a daemon with
// a token and GLM on a fake, its /api/top document and calls held in flight.

#include "tests/support/fake_upstream.hpp"
#include "tests/support/raw_client.hpp"
#include "tests/support/serve_process.hpp"
#include "tests/support/ws_client.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

namespace exai::test::operator_view {

inline constexpr const char* kToken = "operator-view-token-0123456789";

// GET `path` on a fresh connection (REQUIREs an answer).
RawClient::HttpReply get(std::uint16_t port,
                         const std::string& path,
                         const std::map<std::string, std::string>& headers = {});

std::map<std::string, std::string> bearer(const std::string& token = kToken);

// GET /api/top with `token` (none when empty); REQUIREs 200 and a JSON object.
nlohmann::json snapshot(std::uint16_t port, const std::string& token = kToken);

// Polls the snapshot until `predicate` holds; the last snapshot either way.
nlohmann::json snapshot_until(std::uint16_t port,
                              const std::function<bool(const nlohmann::json&)>& predicate,
                              const std::string& token = kToken,
                              std::chrono::milliseconds timeout = std::chrono::seconds(10));

// `exai serve` with kToken and GLM on `fake`, plus `extra`.
std::unique_ptr<ServeProcess> daemon(FakeUpstream& fake, ServeProcess::Env extra = {});

// Sends a chat call_tool for glm-4.5 (does not wait).
void start_chat(WsClient& client, const std::string& request_id, const std::string& prompt);

// Releases the fake's hung requests once `count` requests have reached it (a
// request arriving after release_hangs() would hang again).
void release_after(FakeUpstream& fake, std::size_t count);

// The snapshot's in-flight entry for `request_id`, or null.
const nlohmann::json* find_call(const nlohmann::json& doc, const std::string& request_id);
inline bool
has_call(const nlohmann::json& doc, const std::string& request_id)
{
  return find_call(doc, request_id) != nullptr;
}

} // namespace exai::test::operator_view
