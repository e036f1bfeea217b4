#include "core/config/config.hpp"
#include "core/error.hpp"

#include <catch2/catch.hpp>

using namespace exai::core;

namespace {

DaemonConfig
from_env(Settings::Map env)
{
  return load_daemon_config(Settings({}, std::move(env), {}));
}

} // namespace

TEST_CASE("defaults match the Python daemon's", "[core][config]")
{
  const DaemonConfig c = from_env({{"HOME", "/home/u"}});
  CHECK(c.host == "127.0.0.1");
  CHECK(c.port == 8079);
  CHECK(c.token.empty());
  CHECK(c.max_bytes == 33554432);
  CHECK(c.hello_timeout == std::chrono::seconds(15));
  CHECK(c.ping_interval == std::chrono::seconds(30));
  CHECK(c.ping_timeout == std::chrono::seconds(10));
  CHECK(c.progress_interval == std::chrono::seconds(8));
  CHECK(c.global_max_inflight == 24);
  CHECK(c.kimi_max_inflight == 6);
  CHECK(c.glm_max_inflight == 4);
  CHECK(c.session_max_inflight == 8);
  CHECK(c.conversation_max_inflight == 1);
  CHECK(c.acquire_timeout == std::chrono::seconds(10));
  CHECK(c.call_timeout == std::chrono::seconds(270));
  CHECK(c.result_ttl == std::chrono::seconds(600));
  CHECK(c.max_connections == 1000);
  CHECK(c.max_connections_per_ip == 100);
  CHECK(c.session_timeout == std::chrono::seconds(3600));
  CHECK(c.shutdown_grace == std::chrono::seconds(30));
  CHECK(c.busy_poll == std::chrono::microseconds(100));
  CHECK(from_env({{"EXAI_WS_BUSY_POLL_US", "0"}}).busy_poll.count() == 0);
  CHECK(c.state_dir == "/home/u/.local/state/exai");
  CHECK(c.upstream_idle == std::chrono::seconds(30));
  CHECK(from_env({{"EXAI_UPSTREAM_IDLE_SECS", "0"}}).upstream_idle.count() == 0);
  CHECK(from_env({{"EXAI_UPSTREAM_IDLE_SECS", "2.5"}}).upstream_idle ==
        std::chrono::milliseconds(2500));
  CHECK(c.upstream_stream);
  CHECK(c.upstream_stall == std::chrono::seconds(60));
  CHECK(c.prices.empty());
  CHECK_FALSE(from_env({{"EXAI_UPSTREAM_STREAM", "false"}}).upstream_stream);
  CHECK_FALSE(from_env({{"EXAI_UPSTREAM_STREAM", "Off"}}).upstream_stream);
  CHECK(from_env({{"EXAI_UPSTREAM_STREAM", "1"}}).upstream_stream);
  CHECK(c.upstream_on_loops);
  CHECK_FALSE(from_env({{"EXAI_UPSTREAM_ON_LOOPS", "false"}}).upstream_on_loops);
  CHECK(from_env({{"EXAI_UPSTREAM_STALL_SECS", "0.5"}}).upstream_stall ==
        std::chrono::milliseconds(500));
}

TEST_CASE("EXAI_PRICES is keyed by canonical model name; unknown models are refused",
          "[core][config]")
{
  const auto prices = from_env({{"EXAI_PRICES", "kimi-k2:0.6:2.5,glm-4.5-flash:0:0"}}).prices;
  REQUIRE(prices.size() == 2);
  CHECK(prices.at("kimi-k2-0905-preview").output_per_million == Approx(2.5));
  CHECK(prices.count("glm-4.5-flash") == 1);
  try {
    (void)from_env({{"EXAI_PRICES", "gpt-9:1:1"}});
    FAIL("no error");
  } catch (const Error& e) {
    CHECK_THAT(e.what(),
               Catch::Contains("EXAI_PRICES") && Catch::Contains("'gpt-9'") &&
                   Catch::Contains("not a known model"));
  }
  try {
    (void)from_env({{"EXAI_PRICES", "kimi-k2:1:1,kimi-k2-0905-preview:1:2"}});
    FAIL("no error");
  } catch (const Error& e) {
    CHECK_THAT(e.what(), Catch::Contains("priced twice"));
  }
}

TEST_CASE("flag beats environment beats env file beats default", "[core][config]")
{
  const Settings all(
      {{"EXAI_WS_PORT", "1001"}}, {{"EXAI_WS_PORT", "1002"}}, {{"EXAI_WS_PORT", "1003"}});
  CHECK(load_daemon_config(all).port == 1001);
  CHECK(load_daemon_config(Settings({}, {{"EXAI_WS_PORT", "1002"}}, {{"EXAI_WS_PORT", "1003"}}))
            .port == 1002);
  CHECK(load_daemon_config(Settings({}, {}, {{"EXAI_WS_PORT", "1003"}})).port == 1003);
  CHECK(load_daemon_config(Settings({}, {}, {})).port == 8079);
  CHECK(all.with_flag("EXAI_WS_PORT", "1004").get("EXAI_WS_PORT") == "1004");
}

TEST_CASE("an invalid numeric setting names the variable, the value and the range",
          "[core][config]")
{
  const auto [name, value, range] = GENERATE(table<std::string, std::string, std::string>({
      {"EXAI_WS_PORT", "70000", "an integer from 0 to 65535"},
      {"EXAI_WS_PORT", "80x", "an integer from 0 to 65535"},
      {"EXAI_WS_PORT", "-1", "an integer from 0 to 65535"},
      {"EXAI_WS_GLOBAL_MAX_INFLIGHT", "0", "an integer from 1 to 1000000"},
      {"EXAI_WS_KIMI_MAX_INFLIGHT", "many", "an integer from 1 to 1000000"},
      {"EXAI_WS_SESSION_MAX_INFLIGHT", "2.5", "an integer from 1 to 1000000"},
      {"MAX_CONNECTIONS", "0", "an integer from 1 to 1000000"},
      {"EXAI_WS_CALL_TIMEOUT_SECS", "0", "seconds from 0.05 to 86400"},
      {"EXAI_WS_CALL_TIMEOUT_SECS", "nan", "seconds from 0.05 to 86400"},
      {"EXAI_WS_ACQUIRE_TIMEOUT_SECS", "-3", "seconds from 0 to 3600"},
      {"EXAI_WS_HELLO_TIMEOUT", "soon", "seconds from 0.05 to 3600"},
      {"EXAI_WS_MAX_BYTES", "12", "an integer from 1024 to 1073741824"},
      {"EXAI_WORKER_THREADS", "1000", "an integer from 1 to 256"},
      {"EXAI_WS_BUSY_POLL_US", "20000", "an integer from 0 to 10000"},
      {"EXAI_WS_BUSY_POLL_US", "fast", "an integer from 0 to 10000"},
      {"EXAI_UPSTREAM_IDLE_SECS", "-1", "seconds from 0 to 3600"},
      {"EXAI_UPSTREAM_IDLE_SECS", "forever", "seconds from 0 to 3600"},
      {"EXAI_UPSTREAM_STALL_SECS", "0", "seconds from 0.05 to 3600"},
      {"EXAI_UPSTREAM_STALL_SECS", "soon", "seconds from 0.05 to 3600"},
      {"EXAI_UPSTREAM_STREAM", "maybe", "true or false"},
      {"EXAI_UPSTREAM_ON_LOOPS", "sometimes", "true or false"},
  }));
  CAPTURE(name, value);
  try {
    (void)from_env({{name, value}});
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(e.code() == exai::core::Errc::config_invalid);
    CHECK_THAT(e.what(), Catch::Contains(name + "='" + value + "'"));
    CHECK_THAT(e.what(), Catch::Contains(range));
  }
}

TEST_CASE("durations accept decimal seconds and zero acquire timeout means try once",
          "[core][config]")
{
  const DaemonConfig c = from_env({{"EXAI_WS_CALL_TIMEOUT_SECS", "1.5"},
                                   {"EXAI_WS_ACQUIRE_TIMEOUT_SECS", "0"},
                                   {"EXAI_WS_PROGRESS_INTERVAL_SECS", " 0.25 "}});
  CHECK(c.call_timeout == std::chrono::milliseconds(1500));
  CHECK(c.acquire_timeout == std::chrono::milliseconds(0));
  CHECK(c.progress_interval == std::chrono::milliseconds(250));
}

TEST_CASE("a token shorter than 16 characters is refused, never ignored", "[core][config]")
{
  CHECK_THROWS_WITH(from_env({{"EXAI_WS_TOKEN", "short"}}),
                    Catch::Contains("EXAI_WS_TOKEN") && Catch::Contains("at least 16") &&
                        !Catch::Contains("short"));
  CHECK(from_env({{"EXAI_WS_TOKEN", "0123456789abcdef"}}).token == "0123456789abcdef");
  CHECK(from_env({{"EXAI_WS_TOKEN", ""}}).token.empty());
}

TEST_CASE("an empty numeric setting means the default", "[core][config]")
{
  CHECK(from_env({{"EXAI_WS_PORT", ""}}).port == 8079);
}

TEST_CASE("state dir: EXAI_STATE_DIR, then XDG_STATE_HOME, then HOME", "[core][config]")
{
  CHECK(from_env({{"EXAI_STATE_DIR", "/s"}, {"XDG_STATE_HOME", "/x"}}).state_dir == "/s");
  CHECK(from_env({{"XDG_STATE_HOME", "/x"}, {"HOME", "/h"}}).state_dir == "/x/exai");
  CHECK(from_env({{"HOME", "/h"}}).state_dir == "/h/.local/state/exai");
}

TEST_CASE("list settings split on commas", "[core][config]")
{
  const DaemonConfig c = from_env({{"EXAI_WS_DISABLE_COALESCE_FOR_TOOLS", " chat, ,status "},
                                   {"EXAI_ALLOWED_ORIGINS", "https://a.example"}});
  CHECK(c.disable_coalesce_tools == std::set<std::string, std::less<>>{"chat", "status"});
  CHECK(c.allowed_origins == std::vector<std::string>{"https://a.example"});
}

TEST_CASE("tool visibility, tool-call log and upload settings", "[core][config]")
{
  const DaemonConfig c = from_env({{"DISABLED_TOOLS", " Chat ,KIMI_UPLOAD_FILES,"},
                                   {"LEAN_MODE", "Yes"},
                                   {"LEAN_TOOLS", "Analyze"},
                                   {"STRICT_LEAN", "1"},
                                   {"DIAGNOSTICS", "on"},
                                   {"EXAI_TOOLCALL_LOG_MAX_BYTES", "8192"},
                                   {"EXAI_TOOLCALL_LOG_KEEP", "0"},
                                   {"EXAI_TOOLCALL_LOG_CONTENT", "TRUE"},
                                   {"EXAI_UPLOAD_MAX_BYTES", "1024"},
                                   {"EXAI_REDIS_WRITE_QUEUE_MAX_BYTES", "65536"}});
  CHECK(c.disabled_tools == std::set<std::string, std::less<>>{"chat", "kimi_upload_files"});
  CHECK(c.lean_mode);
  CHECK(c.lean_tools == std::vector<std::string>{"analyze"});
  CHECK(c.strict_lean);
  CHECK(c.diagnostics);
  CHECK(c.toolcall_log_max_bytes == 8192);
  CHECK(c.toolcall_log_keep == 0);
  CHECK(c.toolcall_log_content);
  CHECK(c.upload_max_bytes == 1024);
  CHECK(c.redis_write_queue_max_bytes == 65536);
  const DaemonConfig d = from_env({});
  CHECK_FALSE(d.lean_mode);
  CHECK_FALSE(d.diagnostics);
  CHECK_FALSE(d.toolcall_log_content);
  CHECK(d.toolcall_log_max_bytes == 10485760);
  CHECK(d.toolcall_log_keep == 3);
  CHECK(d.upload_max_bytes == 20971520);
  CHECK(d.redis_write_queue_max_bytes == 67108864);
  CHECK(d.http_bodies_max_bytes == 4 * d.max_bytes);
  CHECK(from_env({{"EXAI_WS_MAX_BYTES", "2048"}}).http_bodies_max_bytes == 8192);
}

TEST_CASE("a bad switch or log size names the variable, the value and what is allowed",
          "[core][config]")
{
  CHECK_THROWS_WITH(
      from_env({{"DIAGNOSTICS", "maybe"}}),
      "invalid DIAGNOSTICS='maybe': expected true or false (also 1/0, yes/no, on/off)");
  CHECK_THROWS_WITH(from_env({{"EXAI_TOOLCALL_LOG_MAX_BYTES", "100"}}),
                    "invalid EXAI_TOOLCALL_LOG_MAX_BYTES='100': expected an integer from 4096 to "
                    "17179869184");
  CHECK_THROWS_WITH(from_env({{"EXAI_TOOLCALL_LOG_KEEP", "-1"}}),
                    "invalid EXAI_TOOLCALL_LOG_KEEP='-1': expected an integer from 0 to 100");
  CHECK_THROWS_WITH(from_env({{"EXAI_UPLOAD_MAX_BYTES", "0"}}),
                    "invalid EXAI_UPLOAD_MAX_BYTES='0': expected an integer from 1 to 536870912");
  CHECK_THROWS_WITH(from_env({{"EXAI_REDIS_WRITE_QUEUE_MAX_BYTES", "1k"}}),
                    "invalid EXAI_REDIS_WRITE_QUEUE_MAX_BYTES='1k': expected an integer from 4096 "
                    "to 17179869184");
  // A body EXAI_WS_MAX_BYTES allows must fit the bound of all bodies.
  CHECK_THROWS_WITH(
      from_env({{"EXAI_WS_MAX_BYTES", "2048"}, {"EXAI_HTTP_BODIES_MAX_BYTES", "2047"}}),
      "invalid EXAI_HTTP_BODIES_MAX_BYTES='2047': expected an integer from 2048 to "
      "68719476736");
}

TEST_CASE("EXAI_REDIS_URL is parsed; unset keeps everything local", "[core][config][redis]")
{
  CHECK_FALSE(from_env({{"HOME", "/home/u"}}).redis);
  const DaemonConfig c = from_env({{"HOME", "/home/u"},
                                   {"EXAI_REDIS_URL", "redis://alice:s3cret@cache.lan:6380/2"},
                                   {"EXAI_REDIS_FAILURE", "refuse"},
                                   {"EXAI_REDIS_LOCAL_SHARE", "0.25"},
                                   {"EXAI_REDIS_LEASE_TTL_SECS", "5"}});
  REQUIRE(c.redis);
  CHECK(c.redis->host == "cache.lan");
  CHECK(c.redis->port == 6380);
  CHECK(c.redis->user == "alice");
  CHECK(c.redis->password == "s3cret");
  CHECK(c.redis->db == 2);
  CHECK(c.redis_failure == SharedFailureMode::refuse);
  CHECK(c.redis_local_share == 0.25);
  CHECK(c.redis_lease_ttl == std::chrono::seconds(5));
  const DaemonConfig d = from_env({{"HOME", "/home/u"}, {"EXAI_REDIS_URL", "redis://[::1]"}});
  REQUIRE(d.redis);
  CHECK(d.redis->host == "::1");
  CHECK(d.redis->port == 6379);
  CHECK(d.redis->password.empty());
  CHECK(d.redis_failure == SharedFailureMode::local);
  CHECK(d.redis_local_share == 0.5);
}

TEST_CASE("a bad Redis setting names the variable and never echoes the password",
          "[core][config][redis]")
{
  const auto message = [](const std::string& name, const std::string& value) {
    try {
      (void)from_env({{"HOME", "/home/u"}, {name, value}});
    } catch (const Error& e) {
      CHECK(e.code() == Errc::config_invalid);
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  CHECK_THAT(message("EXAI_REDIS_URL", "http://host"), Catch::Contains("EXAI_REDIS_URL"));
  CHECK_THAT(message("EXAI_REDIS_URL", "rediss://host"), Catch::Contains("TLS"));
  CHECK_THAT(message("EXAI_REDIS_URL", "redis://:hunter2@host:99999"),
             Catch::Contains("port") && !Catch::Contains("hunter2"));
  CHECK_THAT(message("EXAI_REDIS_URL", "redis://host/x"), Catch::Contains("database"));
  CHECK_THAT(message("EXAI_REDIS_FAILURE", "maybe"), Catch::Contains("EXAI_REDIS_FAILURE"));
  CHECK_THAT(message("EXAI_REDIS_LOCAL_SHARE", "0"), Catch::Contains("EXAI_REDIS_LOCAL_SHARE"));
  CHECK_THAT(message("EXAI_REDIS_LOCAL_SHARE", "1.5"), Catch::Contains("EXAI_REDIS_LOCAL_SHARE"));
  CHECK_THAT(message("EXAI_REDIS_LEASE_TTL_SECS", "0.1"),
             Catch::Contains("EXAI_REDIS_LEASE_TTL_SECS"));
}
