#pragma once

// The op protocol of SPEC §2 on a WebSocket: hello/hello_ack and its close
// codes, then list_tools, call_tool, cancel_tool, health,
// rotate_token and the error frames for everything else. Calls themselves are
// the CallEngine's business.

#include "core/calls/call_engine.hpp"
#include "net/server/auth.hpp"
#include "net/ws/session_registry.hpp"
#include "net/ws/ws_connection.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace exai::net {

class OpDispatcher final : public MessageHandler {
public:
  using HealthFn = std::function<nlohmann::json()>;

  // All references must outlive the dispatcher.
  OpDispatcher(core::CallEngine& engine,
               TokenStore& tokens,
               SessionRegistry& sessions,
               HealthFn health,
               std::shared_ptr<spdlog::logger> log);

  void on_message(const std::shared_ptr<WsConnection>& connection,
                  std::string_view payload) override;
  void on_closed(const std::shared_ptr<WsConnection>& connection,
                 std::vector<std::string> unsent_results) noexcept override;
  void on_tick(SteadyClock::time_point now) noexcept override;

private:
  void on_hello(const std::shared_ptr<WsConnection>& connection, std::string_view payload);
  void on_op(const std::shared_ptr<WsConnection>& connection, const nlohmann::json& frame);
  void call_tool(const std::shared_ptr<WsConnection>& connection, const nlohmann::json& frame);
  void cancel_tool(const std::shared_ptr<WsConnection>& connection, const nlohmann::json& frame);
  void rotate_token(const std::shared_ptr<WsConnection>& connection, const nlohmann::json& frame);

  core::CallEngine& engine_;
  TokenStore& tokens_;
  SessionRegistry& sessions_;
  HealthFn health_;
  std::shared_ptr<spdlog::logger> log_;
  SteadyClock::time_point last_sweep_{};
  // The tool list as JSON text, serialised once: it is fixed for the
  // engine's life, and at ~90 KB re-serialising it per list_tools would cost
  // the event loop milliseconds each time.
  std::once_flag tools_once_;
  std::string tools_text_;
};

} // namespace exai::net
