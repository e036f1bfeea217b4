#include "net/server/auth.hpp"

#include <catch2/catch.hpp>

using namespace exai::net;

TEST_CASE("constant_time_equal compares whole secrets", "[net][auth]")
{
  CHECK(constant_time_equal("secret-secret-16", "secret-secret-16"));
  CHECK_FALSE(constant_time_equal("secret-secret-16", "secret-secret-17"));
  CHECK_FALSE(constant_time_equal("secret", "secret-longer"));
  CHECK_FALSE(constant_time_equal("", "x"));
  CHECK(constant_time_equal("", ""));
}

TEST_CASE("loopback origins and listed origins are allowed, others are not", "[net][auth]")
{
  const std::vector<std::string> listed{"https://ide.example:8443", "vscode-webview://abc/"};
  struct Case {
    std::string origin;
    bool allowed;
  };
  const auto c = GENERATE(Case{"http://127.0.0.1", true},
                          Case{"http://127.0.0.1:8079", true},
                          Case{"https://localhost:3000", true},
                          Case{"HTTP://LOCALHOST", true},
                          Case{"http://[::1]:9000", true},
                          Case{"https://ide.example:8443", true},
                          Case{"https://ide.example:8443/", true},
                          Case{"vscode-webview://abc", true},
                          Case{"https://ide.example", false},
                          Case{"http://evil.example", false},
                          Case{"http://127.0.0.1.evil.example", false},
                          Case{"http://localhost.evil.example:80", false},
                          Case{"http://localhost:80x", false},
                          Case{"http://[::1]evil", false},
                          Case{"ftp://127.0.0.1", false},
                          Case{"null", false},
                          Case{"", false});
  CAPTURE(c.origin);
  CHECK(origin_allowed(c.origin, listed) == c.allowed);
}

TEST_CASE("loopback hosts are recognised", "[net][auth]")
{
  CHECK(exai::net::is_loopback_host("127.0.0.1"));
  CHECK(exai::net::is_loopback_host("127.1.2.3"));
  CHECK(exai::net::is_loopback_host("::1"));
  CHECK(exai::net::is_loopback_host("[::1]"));
  CHECK(exai::net::is_loopback_host("localhost"));
  CHECK_FALSE(exai::net::is_loopback_host("0.0.0.0"));
  CHECK_FALSE(exai::net::is_loopback_host("192.168.1.2"));
  CHECK_FALSE(exai::net::is_loopback_host("example.com"));
}

TEST_CASE("TokenStore accepts the token and rotates it with checks", "[net][auth]")
{
  TokenStore open("");
  CHECK_FALSE(open.required());
  CHECK(open.accepts("anything"));

  TokenStore store("first-token-123456");
  CHECK(store.required());
  CHECK(store.accepts("first-token-123456"));
  CHECK_FALSE(store.accepts("first-token-12345"));
  CHECK(store.rotate(std::nullopt, "second-token-123456") == RotateResult::missing_params);
  CHECK(store.rotate("first-token-123456", std::nullopt) == RotateResult::missing_params);
  CHECK(store.rotate("first-token-123456", "") == RotateResult::missing_params);
  CHECK(store.rotate("wrong", "second-token-123456") == RotateResult::unauthorized);
  CHECK(store.rotate("first-token-123456", "short") == RotateResult::too_short);
  CHECK(store.accepts("first-token-123456"));
  CHECK(store.rotate("first-token-123456", "second-token-123456") == RotateResult::ok);
  CHECK_FALSE(store.accepts("first-token-123456"));
  CHECK(store.accepts("second-token-123456"));
  CHECK(exai::net::rotate_result_name(RotateResult::too_short) == "too_short");
}

TEST_CASE("Host headers must name loopback exactly (DNS rebinding)", "[net][auth]")
{
  using exai::net::loopback_host_header;
  for (const char* ok : {"127.0.0.1",
                         "127.0.0.1:8079",
                         "localhost",
                         "LOCALHOST:1",
                         "[::1]",
                         "[::1]:8079",
                         "127.1.2.3"}) {
    CAPTURE(ok);
    CHECK(loopback_host_header(ok));
  }
  for (const char* bad : {"evil.example",
                          "127.0.0.1.evil.example",
                          "evil.example@127.0.0.1",
                          "[::1]evil",
                          "localhost.evil",
                          "",
                          "127.0.0.1:80/x",
                          "10.0.0.1:8079"}) {
    CAPTURE(bad);
    CHECK_FALSE(loopback_host_header(bad));
  }
}
