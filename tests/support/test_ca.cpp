#include "tests/support/test_ca.hpp"

#include <stdlib.h>

#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <system_error>
#include <vector>

namespace exai::test {

namespace {

void
run(const std::filesystem::path& dir, const std::string& command)
{
  // Quiet: openssl's progress output would clutter test logs.
  const std::string line = "cd '" + dir.string() + "' && " + command + " >openssl.log 2>&1";
  if (std::system(line.c_str()) != 0) { // NOLINT(cert-env33-c): fixed command, test only
    std::ifstream log(dir / "openssl.log");
    std::string text;
    // getline, not istreambuf_iterator: GCC 12 -O2 flags the latter with a
    // false -Wnull-dereference.
    for (std::string entry; std::getline(log, entry);) {
      text += entry + "\n";
    }
    throw std::runtime_error("openssl failed: " + command + "\n" + text);
  }
}

} // namespace

TestCa::TestCa()
{
  std::string pattern = (std::filesystem::temp_directory_path() / "exai-test-ca-XXXXXX").string();
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  if (::mkdtemp(buffer.data()) == nullptr) {
    throw std::system_error(errno, std::generic_category(), "mkdtemp");
  }
  dir_ = buffer.data();
  {
    std::ofstream ext(dir_ / "server.ext");
    ext << "basicConstraints=CA:FALSE\n"
        << "keyUsage=digitalSignature,keyEncipherment\n"
        << "extendedKeyUsage=serverAuth\n"
        << "subjectAltName=IP:127.0.0.1,DNS:localhost\n";
  }
  const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  run(dir_,
      "openssl req -x509 " + ec + " -keyout ca.key -out ca.pem -days 2 -subj '/CN=exai test CA'");
  run(dir_, "openssl req " + ec + " -keyout server.key -out server.csr -subj '/CN=127.0.0.1'");
  run(dir_,
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2"
      " -extfile server.ext -out server.pem");
  run(dir_,
      "openssl req -x509 " + ec +
          " -keyout untrusted.key -out untrusted.pem -days 2 -subj '/CN=127.0.0.1'"
          " -addext subjectAltName=IP:127.0.0.1");
}

TestCa::~TestCa()
{
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

} // namespace exai::test
