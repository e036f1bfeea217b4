// The tool platform end to end (SPEC §4): `model: "auto"`, cross-provider
// fallback, continuation keeping its model, files and images under
// EXAI_FILE_ROOTS, thinking and web search as each provider expects, exact
// schemas and scoped reuse. A real `exai serve` talks to two fake upstreams
// (Kimi and GLM) that record every request body.

#include "tests/support/daemon_checks.hpp"
#include "tests/support/fake_upstream.hpp"
#include "tests/support/provider_daemon.hpp"
#include "tests/support/serve_process.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/ws_client.hpp"

#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

namespace {

using namespace exai::test;
using nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

// A provider answering 503 at once (no Retry-After wait).
FakeBehavior
unavailable()
{
  FakeBehavior down;
  down.status = 503;
  down.retry_after = 0;
  return down;
}

json
last_body(const FakeUpstream& fake)
{
  const auto requests = fake.requests();
  REQUIRE(!requests.empty());
  return json::parse(requests.back().body);
}

std::string
user_text(const json& body)
{
  std::string text;
  for (const auto& message : body["messages"]) {
    if (message["role"] != "user") {
      continue;
    }
    if (message["content"].is_string()) {
      text = message["content"].get<std::string>();
    } else {
      text.clear();
      for (const auto& part : message["content"]) {
        if (part["type"] == "text") {
          text += part["text"].get<std::string>();
        }
      }
    }
  }
  return text;
}

std::string
error_code(const json& res)
{
  INFO(res.dump());
  REQUIRE(res.contains("error"));
  return res["error"]["code"].get<std::string>();
}

} // namespace

TEST_CASE("auto routes chat to the fast model and says why", "[e2e][platform][routing]")
{
  ProviderDaemon d;
  const json env = result_envelope(d.call("chat", {{"prompt", "route me"}, {"model", "auto"}}));
  CHECK(env["metadata"]["model_used"] == "glm-4.5-flash");
  CHECK(env["metadata"]["provider_used"] == "glm");
  CHECK(env["metadata"]["model_selection"]["automatic"] == true);
  CHECK_FALSE(env["metadata"]["model_selection"]["reason"].get<std::string>().empty());
  CHECK(last_body(d.glm)["model"] == "glm-4.5-flash");
  CHECK(d.kimi.request_count() == 0);
  // DEFAULT_MODEL is auto: no model at all routes the same way.
  const json implicit = result_envelope(d.call("chat", {{"prompt", "no model named"}}));
  CHECK(implicit["metadata"]["model_used"] == "glm-4.5-flash");
}

TEST_CASE("auto picks the other provider's equivalent when the preferred one has no key",
          "[e2e][platform][routing]")
{
  ProviderDaemon d({}, "glm");
  const json env =
      result_envelope(d.call("chat", {{"prompt", "only kimi here"}, {"model", "auto"}}));
  CHECK(env["metadata"]["model_used"] == "kimi-k2-turbo-preview");
  CHECK(env["metadata"]["provider_used"] == "kimi");
  CHECK(last_body(d.kimi)["model"] == "kimi-k2-turbo-preview");
}

TEST_CASE("auto with thinking_mode high routes to a thinking model", "[e2e][platform][routing]")
{
  ProviderDaemon d;
  const json env = result_envelope(
      d.call("chat", {{"prompt", "think hard"}, {"model", "auto"}, {"thinking_mode", "high"}}));
  CHECK(env["metadata"]["model_used"] == "kimi-thinking-preview");
  CHECK(last_body(d.kimi)["model"] == "kimi-thinking-preview");
}

TEST_CASE("DEFAULT_MODEL=auto is accepted by serve", "[e2e][platform][routing]")
{
  ProviderDaemon d(ServeProcess::Env{{"DEFAULT_MODEL", "auto"}});
  const json env = result_envelope(d.call("chat", {{"prompt", "default auto"}}));
  CHECK(env["metadata"]["model_selection"]["automatic"] == true);
}

TEST_CASE("auto falls back to the other provider on 5xx after retries, once",
          "[e2e][platform][fallback]")
{
  ProviderDaemon d;
  d.glm.set_behavior(unavailable());
  const json env = result_envelope(d.call("chat", {{"prompt", "glm is down"}, {"model", "auto"}}));
  CHECK(env["metadata"]["provider_used"] == "kimi");
  CHECK(env["metadata"]["model_used"] == "kimi-k2-turbo-preview");
  CHECK(env["metadata"]["fallback_from"] == "glm-4.5-flash");
  CHECK(d.glm.request_count() == 3); // the retries ran first
  CHECK(d.kimi.request_count() == 1);
  CHECK(d.back_to_zero());
}

TEST_CASE("a pinned model never falls back", "[e2e][platform][fallback]")
{
  ProviderDaemon d;
  d.glm.set_behavior(unavailable());
  const json res = d.call("chat", {{"prompt", "pinned"}, {"model", "glm-4.5-flash"}});
  CHECK(error_code(res) == "PROVIDER_ERROR");
  CHECK(d.kimi.request_count() == 0);
  CHECK(d.back_to_zero());
}

TEST_CASE("auto falls back when the provider's circuit is open, without calling it",
          "[e2e][platform][fallback]")
{
  ProviderDaemon d;
  d.glm.set_behavior(unavailable());
  // Pinned calls fail until the circuit opens (5 consecutive failed calls).
  for (int i = 0; i < 5; ++i) {
    (void)d.call("chat", {{"prompt", "trip " + std::to_string(i)}, {"model", "glm-4.5-flash"}});
  }
  const auto glm_requests = d.glm.request_count();
  const json open = d.call("chat", {{"prompt", "circuit open"}, {"model", "glm-4.5-flash"}});
  CHECK(error_code(open) == "PROVIDER_UNAVAILABLE");
  CHECK(d.glm.request_count() == glm_requests);
  const json env = result_envelope(d.call("chat", {{"prompt", "route around"}, {"model", "auto"}}));
  CHECK(env["metadata"]["provider_used"] == "kimi");
  CHECK(env["metadata"]["fallback_from"] == "glm-4.5-flash");
  CHECK(d.glm.request_count() == glm_requests);
  CHECK(d.back_to_zero());
}

TEST_CASE("auto falls back when the provider's scope is still full at the acquire deadline",
          "[e2e][platform][fallback]")
{
  ProviderDaemon d(ServeProcess::Env{{"EXAI_WS_GLM_MAX_INFLIGHT", "1"},
                                     {"EXAI_WS_ACQUIRE_TIMEOUT_SECS", "0.3"}});
  auto holder = d.client();
  REQUIRE(start_call(
      *holder, "hold", "chat", {{"prompt", "hold glm [[hang]]"}, {"model", "glm-4.5-flash"}}));
  REQUIRE(d.glm.wait_for_concurrency(1, 5s));
  const json env = result_envelope(d.call("chat", {{"prompt", "glm is full"}, {"model", "auto"}}));
  CHECK(env["metadata"]["provider_used"] == "kimi");
  CHECK(env["metadata"]["fallback_from"] == "glm-4.5-flash");
  d.glm.release_hangs();
  const auto held = holder->recv_until(
      [](const json& f) { return f.value("op", "") == "call_tool_res"; }, deadline_in(10s));
  REQUIRE(held);
  CHECK(held->contains("outputs"));
  CHECK(d.back_to_zero());
}

TEST_CASE("a continued conversation keeps the model and provider of its last turn",
          "[e2e][platform][continuation]")
{
  ProviderDaemon d;
  auto c = d.client();
  const json first = result_envelope(ProviderDaemon::call_on(
      *c, "chat", {{"prompt", "turn one"}, {"model", "kimi-k2-0905-preview"}}));
  const std::string thread = first["continuation_offer"]["continuation_id"];
  const json second = result_envelope(
      ProviderDaemon::call_on(*c, "chat", {{"prompt", "turn two"}, {"continuation_id", thread}}));
  CHECK(second["metadata"]["model_used"] == "kimi-k2-0905-preview");
  CHECK(second["metadata"]["provider_used"] == "kimi");
  CHECK(d.glm.request_count() == 0);
  const json body = last_body(d.kimi);
  CHECK(body["model"] == "kimi-k2-0905-preview");
  CHECK(body.dump().find("turn one") != std::string::npos); // the history was sent
}

TEST_CASE("files are embedded with line numbers and markers, and not sent twice in a thread",
          "[e2e][platform][files]")
{
  ProviderDaemon d;
  const std::string a = d.file("src/a.cpp", "int a = 1;\nint b = 2;\n");
  d.file("src/node_modules/skip.js", "skipped();\n");
  auto c = d.client();
  const json first = result_envelope(ProviderDaemon::call_on(
      *c, "chat", {{"prompt", "review"}, {"files", {d.roots.path() + "/src"}}}));
  const std::string sent = user_text(last_body(d.glm));
  CHECK_THAT(sent, Catch::Contains("BEGIN FILE: " + a));
  CHECK_THAT(sent, Catch::Contains("END FILE: " + a));
  CHECK_THAT(sent, Catch::Contains("   2│ int b = 2;"));
  CHECK(sent.find("skipped();") == std::string::npos);
  REQUIRE(first["metadata"]["files"]["embedded"].size() == 1);
  CHECK(first["metadata"]["files"]["embedded"][0]["path"] == a);

  const std::string thread = first["continuation_offer"]["continuation_id"];
  const json second = result_envelope(ProviderDaemon::call_on(
      *c, "chat", {{"prompt", "again"}, {"files", {a}}, {"continuation_id", thread}}));
  CHECK(user_text(last_body(d.glm)).find("BEGIN FILE") == std::string::npos);
  CHECK(second["metadata"]["files"]["embedded"].empty());
  REQUIRE(second["metadata"]["files"]["skipped"].size() == 1);
  CHECK_THAT(second["metadata"]["files"]["skipped"][0]["reason"].get<std::string>(),
             Catch::Contains("unchanged since it was sent"));
}

TEST_CASE("files over the model's budget are left out by name, newest first kept",
          "[e2e][platform][files]")
{
  ProviderDaemon d;
  // kimi-latest-8k leaves ~6,000 tokens for files: two of these fit, not three.
  const std::string filler(10000, 'x');
  const std::string oldest = d.file("big/old.txt", filler);
  const std::string middle = d.file("big/mid.txt", filler);
  const std::string newest = d.file("big/new.txt", filler);
  const auto now = fs::file_time_type::clock::now();
  fs::last_write_time(oldest, now - 3h);
  fs::last_write_time(middle, now - 2h);
  fs::last_write_time(newest, now - 1h);
  const json env = result_envelope(d.call(
      "chat",
      {{"prompt", "budget"}, {"model", "kimi-latest-8k"}, {"files", {d.roots.path() + "/big"}}}));
  const json& files = env["metadata"]["files"];
  REQUIRE(files["skipped"].size() >= 1);
  CHECK(files["skipped"][0]["path"] == oldest);
  CHECK_THAT(files["skipped"][0]["reason"].get<std::string>(), Catch::Contains("budget"));
  CHECK(files["embedded"][0]["path"] == newest);
  const std::string sent = user_text(last_body(d.kimi));
  CHECK_THAT(sent, Catch::Contains(oldest)); // the model is told what was left out
  CHECK(sent.find("BEGIN FILE: " + oldest) == std::string::npos);
}

TEST_CASE("every path escape is refused with VALIDATION_ERROR naming the path and the rule",
          "[e2e][platform][files]")
{
  // /dev is a root too, so that /dev/null is refused for its type, not its place.
  ProviderDaemon d(ServeProcess::Env{{"EXAI_FILE_ROOTS", "{roots}:/dev"}});
  TempDir outside;
  std::ofstream(outside.path() + "/secret.txt") << "top secret\n";

  const std::string fifo = d.roots.path() + "/fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const std::string sock = d.roots.path() + "/sock";
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", sock.c_str());
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  fs::create_symlink(outside.path() + "/secret.txt", d.roots.path() + "/link.txt");

  const std::vector<std::pair<std::string, std::string>> cases = {
      {"relative/path.txt", "absolute"},
      {d.roots.path() + "/../" + fs::path(outside.path()).filename().string() + "/secret.txt",
       "'..'"},
      {outside.path() + "/secret.txt", "outside the allowed roots"},
      {d.roots.path() + "/link.txt", "once symlinks are resolved"},
      {fifo, "FIFOs"},
      {sock, "sockets"},
      {"/dev/null", "devices"},
  };
  for (const auto& [path, rule] : cases) {
    INFO(path);
    const json res = d.call("chat", {{"prompt", "read it"}, {"files", {path}}});
    INFO(res.dump());
    REQUIRE(error_code(res) == "VALIDATION_ERROR");
    const json details = res["error"].value("details", json::object());
    CHECK(details.value("value", "") == path);
    CHECK_THAT(details.value("rule", ""), Catch::Contains(rule));
  }
  ::close(fd);
  CHECK(d.glm.request_count() == 0); // nothing reached the model
  for (const auto& request : d.glm.requests()) {
    CHECK(request.body.find("top secret") == std::string::npos);
  }
}

TEST_CASE("images go to a vision model as image parts and are refused for a text model",
          "[e2e][platform][images]")
{
  ProviderDaemon d;
  // A 1x1 PNG.
  const unsigned char png_bytes[] = {
      0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48,
      0x44, 0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00,
      0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78,
      0x9c, 0x63, 0xf8, 0x0f, 0x00, 0x00, 0x01, 0x01, 0x00, 0x05, 0x18, 0xd8, 0x4e, 0x00,
      0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
  };
  const std::string png(reinterpret_cast<const char*>(png_bytes), sizeof png_bytes);
  const std::string image = d.file("shot.png", png);
  const json env = result_envelope(
      d.call("chat", {{"prompt", "what is this"}, {"model", "glm-4.5v"}, {"images", {image}}}));
  CHECK(env["metadata"]["images"] == 1);
  CHECK_THAT(env["content"].get<std::string>(), Catch::Contains("[images: 1]"));
  const json body = last_body(d.glm);
  const json& parts = body["messages"].back()["content"];
  REQUIRE(parts.is_array());
  bool saw_png = false;
  for (const auto& part : parts) {
    saw_png = saw_png ||
              (part["type"] == "image_url" &&
               part["image_url"]["url"].get<std::string>().rfind("data:image/png;base64,", 0) == 0);
  }
  CHECK(saw_png);

  const json refused =
      d.call("chat", {{"prompt", "and this"}, {"model", "glm-4.5-flash"}, {"images", {image}}});
  CHECK(error_code(refused) == "VALIDATION_ERROR");
  CHECK_THAT(refused["error"]["message"].get<std::string>(), Catch::Contains("glm-4.5v"));

  // Under auto, images route to a vision model.
  const json routed =
      result_envelope(d.call("chat", {{"prompt", "auto vision"}, {"images", {image}}}));
  const std::string model = routed["metadata"]["model_used"];
  CHECK((model == "glm-4.5v" || model.find("vision") != std::string::npos ||
         model.find("kimi-latest") != std::string::npos));
}

TEST_CASE("thinking_mode maps to each provider's parameters", "[e2e][platform][thinking]")
{
  ProviderDaemon d;
  (void)result_envelope(
      d.call("chat", {{"prompt", "think"}, {"model", "glm-4.6"}, {"thinking_mode", "high"}}));
  CHECK(last_body(d.glm)["thinking"]["type"] == "enabled");
  (void)result_envelope(
      d.call("chat", {{"prompt", "don't"}, {"model", "glm-4.6"}, {"thinking_mode", "minimal"}}));
  CHECK(last_body(d.glm)["thinking"]["type"] == "disabled");
  (void)result_envelope(d.call("chat", {{"prompt", "plain"}, {"model", "glm-4.6"}}));
  CHECK_FALSE(last_body(d.glm).contains("thinking"));
}

TEST_CASE("use_websearch runs Kimi's $web_search round trip", "[e2e][platform][websearch]")
{
  ProviderDaemon d;
  const json env = result_envelope(d.call(
      "chat",
      {{"prompt", "latest news"}, {"model", "kimi-k2-0905-preview"}, {"use_websearch", true}}));
  CHECK_THAT(env["content"].get<std::string>(), Catch::Contains("[searched]"));
  CHECK(env["metadata"]["web_search"]["rounds"] == 1);
  const auto requests = d.kimi.requests();
  REQUIRE(requests.size() == 2);
  const json first = json::parse(requests[0].body);
  CHECK(first["tools"][0]["type"] == "builtin_function");
  CHECK(first["tools"][0]["function"]["name"] == "$web_search");
  const json second = json::parse(requests[1].body);
  const json& echo = second["messages"].back();
  CHECK(echo["role"] == "tool");
  CHECK(echo["name"] == "$web_search");
  CHECK_THAT(echo["content"].get<std::string>(), Catch::Contains("fake-search"));
  CHECK(second["messages"][second["messages"].size() - 2]["tool_calls"][0]["id"] ==
        echo["tool_call_id"]);
}

TEST_CASE("use_websearch sends GLM's web_search tool and returns its results",
          "[e2e][platform][websearch]")
{
  ProviderDaemon d;
  const json env = result_envelope(d.call(
      "chat", {{"prompt", "search glm"}, {"model", "glm-4.5-flash"}, {"use_websearch", true}}));
  const json body = last_body(d.glm);
  CHECK(body["tools"][0]["type"] == "web_search");
  CHECK(body["tools"][0]["web_search"]["enable"] == true);
  CHECK(env["metadata"]["web_search"]["results"][0]["link"] == "https://search.invalid/1");
  CHECK(d.glm.request_count() == 1);
}

TEST_CASE("unknown arguments and out-of-range values are refused by name",
          "[e2e][platform][arguments]")
{
  ProviderDaemon d;
  const json unknown = d.call("chat", {{"prompt", "ok"}, {"promt", "typo"}});
  CHECK(error_code(unknown) == "VALIDATION_ERROR");
  CHECK(unknown["error"]["details"]["field"] == "promt");
  CHECK_THAT(unknown["error"]["details"]["allowed"].get<std::string>(), Catch::Contains("prompt"));
  const json hot = d.call("chat", {{"prompt", "hot"}, {"temperature", 1.5}});
  CHECK(error_code(hot) == "VALIDATION_ERROR");
  CHECK(hot["error"]["details"]["field"] == "temperature");
  CHECK(hot["error"]["details"]["rule"] == "must be from 0 to 1");
  CHECK(d.glm.request_count() == 0);
}

TEST_CASE("identical calls from two sessions are not shared unless the scope says so",
          "[e2e][platform][reuse]")
{
  SECTION("session scope (the default): each session gets its own upstream call")
  {
    ProviderDaemon d;
    const json a = result_envelope(d.call("chat", {{"prompt", "same words"}}));
    const json b = result_envelope(d.call("chat", {{"prompt", "same words"}}));
    CHECK(d.glm.request_count() == 2);
    CHECK(a["continuation_offer"]["continuation_id"] != b["continuation_offer"]["continuation_id"]);
  }
  SECTION("global scope: one upstream call, but each caller gets its own thread")
  {
    ProviderDaemon d(ServeProcess::Env{{"EXAI_WS_REUSE_SCOPE", "global"}});
    const json a = result_envelope(d.call("chat", {{"prompt", "same words"}}));
    const json b = result_envelope(d.call("chat", {{"prompt", "same words"}}));
    CHECK(d.glm.request_count() == 1);
    CHECK(a["content"] == b["content"]);
    CHECK(a["continuation_offer"]["continuation_id"] != b["continuation_offer"]["continuation_id"]);
  }
}
