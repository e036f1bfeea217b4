#include "tests/support/daemon_checks.hpp"

#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <catch2/catch.hpp>

#include <sstream>
#include <thread>

namespace exai::test {

HttpAnswer
http_request(std::uint16_t port,
             const std::string& method,
             const std::string& path,
             const std::string& token)
{
  const auto start = std::chrono::steady_clock::now();
  Poco::Net::HTTPClientSession session("127.0.0.1", port);
  session.setTimeout(Poco::Timespan(10, 0));
  Poco::Net::HTTPRequest request(method, path, Poco::Net::HTTPMessage::HTTP_1_1);
  if (!token.empty()) {
    request.set("Authorization", "Bearer " + token);
  }
  session.sendRequest(request);
  Poco::Net::HTTPResponse response;
  std::ostringstream body;
  body << session.receiveResponse(response).rdbuf();
  HttpAnswer answer;
  answer.status = static_cast<int>(response.getStatus());
  answer.body = body.str();
  answer.took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  return answer;
}

nlohmann::json
fetch_health(std::uint16_t port, const std::string& token)
{
  return nlohmann::json::parse(http_request(port, "GET", "/health", token).body);
}

bool
capacity_back_to_zero(std::uint16_t port, const std::string& token, std::chrono::milliseconds limit)
{
  const auto deadline = deadline_in(limit);
  for (;;) {
    const nlohmann::json h = fetch_health(port, token);
    const nlohmann::json& cap = h["capacity"];
    bool zero = h["inflight_calls"] == 0 && h["queued"] == 0 && cap["global"]["in_use"] == 0 &&
                cap["global"]["waiting"] == 0 && cap["sessions"]["in_use"] == 0 &&
                cap["conversations"]["in_use"] == 0;
    for (const auto& [id, scope] : cap["providers"].items()) {
      zero = zero && scope["in_use"] == 0 && scope["waiting"] == 0;
    }
    if (zero) {
      return true;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      UNSCOPED_INFO(h.dump());
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

namespace {

// Sends call_tool and waits for its first `answer_op` frame (ack or result).
std::optional<nlohmann::json>
send_call(WsClient& client,
          const std::string& request_id,
          const std::string& tool,
          const nlohmann::json& arguments,
          const char* answer_op,
          std::chrono::milliseconds limit)
{
  client.send_json(
      {{"op", "call_tool"}, {"request_id", request_id}, {"name", tool}, {"arguments", arguments}});
  return client.recv_until(
      [&](const nlohmann::json& f) {
        return f.value("op", "") == answer_op && f.value("request_id", "") == request_id;
      },
      deadline_in(limit));
}

} // namespace

bool
start_call(WsClient& client,
           const std::string& request_id,
           const std::string& tool,
           const nlohmann::json& arguments,
           std::chrono::milliseconds limit)
{
  return send_call(client, request_id, tool, arguments, "call_tool_ack", limit).has_value();
}

std::optional<nlohmann::json>
call_tool(WsClient& client,
          const std::string& request_id,
          const std::string& tool,
          const nlohmann::json& arguments,
          std::chrono::milliseconds limit)
{
  return send_call(client, request_id, tool, arguments, "call_tool_res", limit);
}

nlohmann::json
result_envelope(const nlohmann::json& result)
{
  INFO(result.dump());
  REQUIRE(result.contains("outputs"));
  return nlohmann::json::parse(result["outputs"][0]["text"].get<std::string>());
}

} // namespace exai::test
