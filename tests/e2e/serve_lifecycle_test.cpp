// exai serve end to end: start-up checks, exit codes and signals (SPEC §1).

#include "tests/support/exai_run.hpp"
#include "tests/support/serve_process.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/support/ws_client.hpp"

#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <catch2/catch.hpp>

#include <csignal>

namespace {

using namespace exai::test;
using namespace std::chrono_literals;

} // namespace

TEST_CASE("SIGTERM and SIGINT stop the daemon with exit 0, closing connections with 1001",
          "[e2e][serve][lifecycle]")
{
  const int signal = GENERATE(SIGTERM, SIGINT);
  auto serve = ServeProcess::start_ready();
  WsClient client(serve->port());
  REQUIRE(client.hello());
  CHECK(serve->stop(signal) == 0);
  CHECK(client.wait_close(deadline_in(5s)) == 1001);
  CHECK(serve->stderr_text().find("serve stopped") != std::string::npos);
}

TEST_CASE("a port in use makes serve exit 69", "[e2e][serve][lifecycle]")
{
  Poco::Net::ServerSocket occupied(Poco::Net::SocketAddress("127.0.0.1", 0));
  const auto port = std::to_string(occupied.address().port());
  ServeProcess serve({}, {"--port", port});
  CHECK(serve.wait_exit() == 69);
  CHECK(serve.stderr_text().find("cannot listen") != std::string::npos);
}

TEST_CASE("a bad configuration value makes serve exit 78 naming the setting",
          "[e2e][serve][lifecycle]")
{
  struct Case {
    std::string name;
    std::string value;
  };
  const auto bad = GENERATE(Case{"EXAI_WS_MAX_BYTES", "lots"},
                            Case{"MAX_CONNECTIONS", "0"},
                            Case{"EXAI_WS_PING_INTERVAL", "-1"},
                            Case{"EXAI_WS_TOKEN", "too-short"});
  CAPTURE(bad.name, bad.value);
  ServeProcess serve(ServeProcess::Env{{bad.name, bad.value}});
  CHECK(serve.wait_exit() == 78);
  CHECK(serve.stderr_text().find(bad.name) != std::string::npos);
}

TEST_CASE("a non-loopback bind without a token is refused with exit 78", "[e2e][serve][lifecycle]")
{
  ServeProcess serve({}, {"--host", "0.0.0.0"});
  CHECK(serve.wait_exit() == 78);
  CHECK(serve.stderr_text().find("EXAI_WS_TOKEN") != std::string::npos);
}

TEST_CASE("the --port flag beats EXAI_WS_PORT", "[e2e][serve][lifecycle]")
{
  // EXAI_WS_PORT=1 would need root; the --port 0 flag must win.
  auto serve = ServeProcess::start_ready({{"EXAI_WS_PORT", "1"}});
  CHECK(serve->port() != 1);
  CHECK(serve->stop(SIGTERM) == 0);
}

TEST_CASE("serve warns when the descriptor limit is below MAX_CONNECTIONS", "[e2e]")
{
  // The port is taken, so serve stops right after the check; the hard limit
  // of 512 cannot be raised past, and MAX_CONNECTIONS defaults to 1000.
  const Poco::Net::ServerSocket taken(Poco::Net::SocketAddress("127.0.0.1", 0));
  const exai::test::TempDir home;
  const std::string port = std::to_string(taken.address().port());
  const auto run = exai::test::run_exai(
      "/bin/sh",
      {"HOME=" + home.path(), "EXAI_STATE_DIR=" + home.path() + "/state"},
      "-c " + exai::test::shell_quote("ulimit -n 512 && exec \"$0\" serve --port " + port) + " " +
          exai::test::shell_quote(EXAI_BINARY));
  CHECK(run.exit_code != 0);
  CHECK_THAT(
      run.err,
      Catch::Contains("descriptor limit below MAX_CONNECTIONS nofile=512 max_connections=1000"));
}
