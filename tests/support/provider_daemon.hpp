#pragma once

// A real `exai serve` with both providers configured, each on its own fake
// upstream that records every request, file roots and a state directory in
// scratch directories: the fixture of the tool end-to-end tests.

#include "tests/support/fake_upstream.hpp"
#include "tests/support/serve_process.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/test_keys.hpp"
#include "tests/support/ws_client.hpp"

#include <nlohmann/json.hpp>

#include <memory>
#include <string>

namespace exai::test {

class ProviderDaemon {
public:
  // `extra` overrides the environment; "{roots}" in a value stands for the
  // scratch roots directory. `without` ("kimi" or "glm") drops that key.
  explicit ProviderDaemon(ServeProcess::Env extra = {}, const std::string& without = {});

  FakeUpstream kimi;
  FakeUpstream glm;
  TempDir roots;
  TempDir state;
  std::unique_ptr<ServeProcess> serve;

  // A fresh connection that has said hello.
  std::unique_ptr<WsClient> client();
  // One connection kept for the fixture's life (one session).
  WsClient& session();

  // The result frame of one call on a fresh connection / on session().
  nlohmann::json call(const std::string& tool, const nlohmann::json& arguments);
  nlohmann::json session_call(const std::string& tool, const nlohmann::json& arguments);
  static nlohmann::json
  call_on(WsClient& client, const std::string& tool, const nlohmann::json& arguments);
  // The reply envelope of a successful call on session().
  nlohmann::json reply(const std::string& tool, const nlohmann::json& arguments);
  // The parsed JSON content of a successful call's envelope (session()).
  nlohmann::json content(const std::string& tool, const nlohmann::json& arguments);
  // The error object of a failed call (session()).
  nlohmann::json error(const std::string& tool, const nlohmann::json& arguments);

  bool back_to_zero() const;
  std::size_t upstream_requests() const { return kimi.request_count() + glm.request_count(); }

  // Writes `text` to roots/name (creating folders) and returns its path.
  std::string file(const std::string& name, const std::string& text) const;

private:
  std::unique_ptr<WsClient> session_;
};

} // namespace exai::test
