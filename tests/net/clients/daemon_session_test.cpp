#include "core/error.hpp"
#include "net/clients/daemon_session.hpp"

#include <catch2/catch.hpp>

using exai::net::apply_url;
using exai::net::DaemonAddress;

TEST_CASE("daemon URLs are parsed by Poco::URI with clear errors", "[net][clients]")
{
  DaemonAddress a;
  apply_url(a, "ws://127.0.0.1:9000/ws/path");
  CHECK(a.host == "127.0.0.1");
  CHECK(a.port == 9000);
  CHECK(a.path == "/ws/path");
  apply_url(a, "ws://[::1]:8079");
  CHECK(a.host == "::1");
  CHECK(a.path == "/");
  apply_url(a, "ws://localhost");
  CHECK(a.port == 80);
  CHECK(a.ws_url() == "ws://localhost/");
  for (const char* bad :
       {"http://127.0.0.1:8079", "ws://:8079", "wss://x:1", "not a url", "ws://h:99999"}) {
    CAPTURE(bad);
    try {
      apply_url(a, bad, "--url");
      FAIL("accepted");
    } catch (const exai::core::Error& e) {
      CHECK(e.code() == exai::core::Errc::config_invalid);
      CHECK_THAT(e.what(), Catch::Contains("--url") && Catch::Contains("ws://HOST"));
    }
  }
}

TEST_CASE("a daemon bound to every interface is reached over loopback", "[net][clients]")
{
  exai::core::DaemonConfig config;
  config.host = "0.0.0.0";
  config.port = 1234;
  config.token = "t";
  const auto a = DaemonAddress::from(config);
  CHECK(a.host == "127.0.0.1");
  CHECK(a.port == 1234);
  CHECK(a.token == "t");
  CHECK(a.http_url() == "http://127.0.0.1:1234");
  config.host = "::";
  CHECK(DaemonAddress::from(config).host == "::1");
}
