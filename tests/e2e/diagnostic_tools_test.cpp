// The diagnostic tools end to end: provider_capabilities, health, activity,
// toolcall_log_tail and self-check against a real `exai serve`, and the
// tool-call log they read: one line per finished call, rotated by size,
// never holding a key (and prompt text only when asked to).

#include "tests/support/provider_daemon.hpp"
#include "tests/support/text_file.hpp"

#include <catch2/catch.hpp>

#include <csignal>
#include <filesystem>

namespace {

using namespace exai::test;
using nlohmann::json;
namespace fs = std::filesystem;

// Every tool-call log file of the daemon, concatenated.
std::string
all_logs(const ProviderDaemon& d)
{
  std::string text;
  for (const auto& entry : fs::directory_iterator(d.state.path())) {
    if (entry.path().filename().string().rfind("toolcalls.jsonl", 0) == 0) {
      text += read_text(entry.path().string());
    }
  }
  return text;
}

} // namespace

TEST_CASE("provider_capabilities reports providers by key presence and the listed tools",
          "[e2e][diagnostics]")
{
  ProviderDaemon d(ServeProcess::Env{{"DISABLED_TOOLS", "chat"}});
  const json report = d.content("provider_capabilities", {{"show_advanced", true}});
  REQUIRE(report["providers"].size() == 2);
  for (const auto& provider : report["providers"]) {
    CHECK(provider["key_present"] == true);
    CHECK(provider["available"] == true);
  }
  const std::string text = report.dump();
  CHECK(text.find(kKimiTestKey) == std::string::npos);
  CHECK(text.find(kGlmTestKey) == std::string::npos);
  const auto& tools = report["tools"];
  CHECK(std::find(tools.begin(), tools.end(), "analyze") != tools.end());
  CHECK(std::find(tools.begin(), tools.end(), "chat") == tools.end());
  bool chat_hidden = false;
  for (const auto& hidden : report["hidden_tools"]) {
    chat_hidden = chat_hidden ||
                  (hidden["name"] == "chat" && hidden["reason"] == "disabled by DISABLED_TOOLS");
  }
  CHECK(chat_hidden);
  CHECK(report["limits"]["EXAI_UPLOAD_MAX_BYTES"] == 20971520);
}

TEST_CASE("health returns the daemon's health document", "[e2e][diagnostics]")
{
  ProviderDaemon d;
  const json health = d.content("health", json::object());
  CHECK(health["state"] == "serving");
  CHECK(health["tool_count"] == 30); // the listed tools: self-check needs DIAGNOSTICS
  CHECK(health.contains("capacity"));
}

TEST_CASE("toolcall_log_tail shows finished calls without their prompt text",
          "[e2e][diagnostics][toolcall-log]")
{
  ProviderDaemon d;
  d.reply("chat", {{"prompt", "secret-prompt-text"}, {"model", "glm-4.5-flash"}});
  (void)d.call("chat", {{"prompt", ""}}); // refused: empty prompt
  const json tail = d.content("toolcall_log_tail", {{"n", 2}});
  REQUIRE(tail["count"] == 2);
  const json ok = tail["events"][0];
  CHECK(ok["tool"] == "chat");
  CHECK(ok["outcome"] == "ok");
  CHECK(ok["model"] == "glm-4.5-flash");
  CHECK(ok["provider"] == "glm");
  CHECK(ok["usage"]["total_tokens"].get<int>() > 0);
  CHECK(ok["argument_bytes"].get<int>() > 0);
  CHECK(ok["result_bytes"].get<int>() > 0);
  CHECK(ok["session"].get<std::string>().size() < 16);
  const json refused = tail["events"][1];
  CHECK(refused["outcome"] == "VALIDATION_ERROR");
  CHECK(refused["error_field"] == "prompt");
  CHECK(all_logs(d).find("secret-prompt-text") == std::string::npos);

  const json only_chat = d.content("toolcall_log_tail", {{"n", 5}, {"tool", "toolcall_log_tail"}});
  CHECK(only_chat["count"] == 1);
  const json error = d.error("toolcall_log_tail", {{"n", 0}});
  CHECK(error["code"] == "VALIDATION_ERROR");
  CHECK(error["details"]["field"] == "n");
  CHECK(error["details"]["rule"] == "must be from 1 to 200");
}

TEST_CASE("the tool-call log holds prompts only with EXAI_TOOLCALL_LOG_CONTENT and never a key",
          "[e2e][diagnostics][toolcall-log]")
{
  ProviderDaemon d(ServeProcess::Env{{"EXAI_TOOLCALL_LOG_CONTENT", "true"}});
  d.reply("chat", {{"prompt", "visible-prompt-text"}});
  // The fake puts the Authorization header it received into its error text.
  const json error =
      d.error("chat", {{"prompt", "leak [[status=400]][[echo_auth]]"}, {"model", "glm-4.5-flash"}});
  CHECK(error["code"] == "PROVIDER_ERROR");
  (void)d.content("toolcall_log_tail", json::object()); // waits for the log to be written
  const std::string logs = all_logs(d);
  CHECK(logs.find("visible-prompt-text") != std::string::npos);
  CHECK(logs.find("leak") != std::string::npos);
  CHECK(logs.find(kGlmTestKey) == std::string::npos);
  CHECK(logs.find(kKimiTestKey) == std::string::npos);
}

TEST_CASE("the tool-call log rotates past its size and keeps N files",
          "[e2e][diagnostics][toolcall-log]")
{
  ProviderDaemon d(
      ServeProcess::Env{{"EXAI_TOOLCALL_LOG_MAX_BYTES", "4096"}, {"EXAI_TOOLCALL_LOG_KEEP", "2"}});
  for (int i = 0; i < 80; ++i) {
    d.reply("version", json::object());
  }
  (void)d.content("toolcall_log_tail", json::object());
  // The tail spans the live file and the newest rotated one.
  const json tail = d.content("toolcall_log_tail", {{"n", 200}});
  CHECK(tail["count"].get<int>() > 10);
  CHECK(tail["events"].back()["tool"] == "toolcall_log_tail");
  // Each call's line is written after its reply, and a write may rotate the
  // files: look at them only once a graceful stop has written the last line.
  REQUIRE(d.serve->stop(SIGTERM) == 0);
  const fs::path base = fs::path(d.state.path()) / "toolcalls.jsonl";
  REQUIRE(fs::exists(base));
  REQUIRE(fs::exists(base.string() + ".1"));
  REQUIRE(fs::exists(base.string() + ".2"));
  CHECK_FALSE(fs::exists(base.string() + ".3"));
  for (const auto& path : {base.string(), base.string() + ".1", base.string() + ".2"}) {
    CHECK(fs::file_size(path) <= 4096);
  }
}

TEST_CASE("activity shows call lines filtered by tool and level", "[e2e][diagnostics]")
{
  ProviderDaemon d;
  d.reply("version", json::object());
  d.reply("chat", {{"prompt", "hello"}});
  const json env = d.reply("activity", {{"tool", "chat"}});
  const std::string text = env["content"].get<std::string>();
  CHECK(text.find("tool=chat outcome=ok") != std::string::npos);
  CHECK(text.find("tool=version") == std::string::npos);
  const json errors = d.reply("activity", {{"level", "error"}, {"tool", "chat"}});
  CHECK(errors["content"] == "");
  const json recent = d.reply("activity", {{"since_seconds", 600}, {"contains", "tool=version"}});
  CHECK(recent["content"].get<std::string>().find("tool=version outcome=ok") != std::string::npos);
  const json error = d.error("activity", {{"level", "loud"}});
  CHECK(error["code"] == "VALIDATION_ERROR");
  CHECK(error["details"]["field"] == "level");
}

TEST_CASE("self-check probes each provider and checks the state dir and file roots",
          "[e2e][diagnostics]")
{
  ProviderDaemon d(ServeProcess::Env{{"DIAGNOSTICS", "true"}});
  const json report = d.content("self-check", json::object());
  INFO(report.dump());
  CHECK(report["ok"] == true);
  int probed = 0;
  for (const auto& check : report["checks"]) {
    if (check["check"].get<std::string>().rfind("provider", 0) == 0) {
      CHECK(check["detail"].get<std::string>().find("reachable") != std::string::npos);
      ++probed;
    }
  }
  CHECK(probed == 2);
  CHECK(d.kimi.request_count() == 1);
  CHECK(d.glm.request_count() == 1);
  CHECK(report.dump().find(kKimiTestKey) == std::string::npos);
}

TEST_CASE("self-check reports a missing file root", "[e2e][diagnostics]")
{
  ProviderDaemon d(
      ServeProcess::Env{{"DIAGNOSTICS", "true"}, {"EXAI_FILE_ROOTS", "/nonexistent/exai-root"}});
  const json report = d.content("self-check", json::object());
  CHECK(report["ok"] == false);
  CHECK(report.dump().find("/nonexistent/exai-root does not exist") != std::string::npos);
}
