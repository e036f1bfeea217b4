#include "net/upstream/ssl_init.hpp"

#include <Poco/Net/SSLManager.h>

#include <mutex>

namespace exai::net {

void
ensure_ssl_initialized()
{
  static std::once_flag once;
  std::call_once(once, [] { Poco::Net::initializeSSL(); });
}

} // namespace exai::net
