#pragma once

#include <filesystem>
#include <string>

namespace exai::test {

// Throwaway TLS material for loopback HTTPS tests, generated with the
// `openssl` command line into a fresh temporary directory (removed by the
// destructor):
//  - ca_cert: a test CA (PEM), what EXAI_CA_FILE should point at;
//  - server_cert/server_key: a certificate for 127.0.0.1 (SAN IP:127.0.0.1,
//    DNS:localhost) signed by that CA;
//  - untrusted_cert/untrusted_key: a self-signed certificate for 127.0.0.1
//    that no trust store accepts.
// Throws std::runtime_error when openssl fails.
class TestCa {
public:
  TestCa();
  ~TestCa();

  TestCa(const TestCa&) = delete;
  TestCa& operator=(const TestCa&) = delete;

  const std::filesystem::path& dir() const noexcept { return dir_; }
  std::string ca_cert() const { return (dir_ / "ca.pem").string(); }
  std::string server_cert() const { return (dir_ / "server.pem").string(); }
  std::string server_key() const { return (dir_ / "server.key").string(); }
  std::string untrusted_cert() const { return (dir_ / "untrusted.pem").string(); }
  std::string untrusted_key() const { return (dir_ / "untrusted.key").string(); }

private:
  std::filesystem::path dir_;
};

} // namespace exai::test
