#pragma once

// A real `exai serve` whose providers all answer from one fake upstream: the
// fixture of the end-to-end tests of the daemon itself (calls, streaming,
// hardening), where which provider answers does not matter.

#include "tests/support/fake_upstream.hpp"
#include "tests/support/serve_process.hpp"
#include "tests/support/ws_client.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace exai::test {

class FakeDaemon {
public:
  // Starts `exai serve` with `env` and `extra` over it. Each provider whose
  // key is set (GLM_API_KEY, KIMI_API_KEY) and whose URL is not gets the
  // fake's. EXAI_WS_TOKEN, when set, is the token the helpers below send.
  explicit FakeDaemon(ServeProcess::Env env, const ServeProcess::Env& extra = {});

  FakeUpstream fake;
  std::unique_ptr<ServeProcess> serve;
  std::string token;

  std::uint16_t port() const { return serve->port(); }
  // A fresh connection whose hello was accepted; `session` resumes that one.
  std::unique_ptr<WsClient> client(const std::optional<std::string>& session = std::nullopt);
  nlohmann::json health() const;
  // Waits until nothing is in flight and every capacity scope reads zero.
  bool back_to_zero(std::chrono::milliseconds limit = std::chrono::seconds(20)) const;
};

// `exai serve` with GLM (key `glm_key`) answering from `fake`, and `extra`
// settings: for tests that hold the process and the fake apart.
std::unique_ptr<ServeProcess>
serve_glm(const FakeUpstream& fake, const std::string& glm_key, ServeProcess::Env extra = {});

} // namespace exai::test
