#include "tests/support/daemon_checks.hpp"

#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <catch2/catch.hpp>

#include <sstream>
#include <thread>

namespace exai::test {

nlohmann::json
fetch_health(std::uint16_t port, const std::string& token)
{
  Poco::Net::HTTPClientSession session("127.0.0.1", port);
  session.setTimeout(Poco::Timespan(10, 0));
  Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_GET, "/health");
  if (!token.empty()) {
    request.set("Authorization", "Bearer " + token);
  }
  session.sendRequest(request);
  Poco::Net::HTTPResponse response;
  std::ostringstream body;
  body << session.receiveResponse(response).rdbuf();
  return nlohmann::json::parse(body.str());
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

std::optional<nlohmann::json>
call_tool(WsClient& client,
          const std::string& request_id,
          const std::string& tool,
          const nlohmann::json& arguments,
          std::chrono::milliseconds limit)
{
  client.send_json(
      {{"op", "call_tool"}, {"request_id", request_id}, {"name", tool}, {"arguments", arguments}});
  return client.recv_until(
      [&](const nlohmann::json& f) {
        return f.value("op", "") == "call_tool_res" && f.value("request_id", "") == request_id;
      },
      deadline_in(limit));
}

nlohmann::json
result_envelope(const nlohmann::json& result)
{
  INFO(result.dump());
  REQUIRE(result.contains("outputs"));
  return nlohmann::json::parse(result["outputs"][0]["text"].get<std::string>());
}

} // namespace exai::test
