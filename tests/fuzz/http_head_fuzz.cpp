// fuzz_http_head: the input is what a client sends first on the daemon's
// port. Runs the event loop's check for a complete request head (and Poco's
// parse of it), then parses the head the way an HTTP thread would, and checks
// the two agree on the framing.

#include "net/http/memory_exchange.hpp"
#include "net/http/request_head.hpp"

#include <Poco/Exception.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace http = exai::net::http;

extern "C" int
LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const http::HeadCheck check = http::inspect_request_head(bytes, 8192);
  if (check.status != http::HeadCheck::Status::complete) {
    return 0;
  }
  if (check.head_bytes > size || check.head_bytes > 8192) {
    std::abort();
  }
  static const Poco::Net::HTTPServerParams::Ptr params(new Poco::Net::HTTPServerParams);
  http::MemoryResponse response;
  try {
    const http::MemoryRequest request(bytes,
                                      check.head_bytes,
                                      Poco::Net::SocketAddress(),
                                      Poco::Net::SocketAddress(),
                                      *params,
                                      response);
    if (request.getChunkedTransferEncoding() != check.chunked) {
      std::abort();
    }
  } catch (const Poco::Exception&) {
    std::abort(); // the loop accepted a head the HTTP thread cannot parse
  }
  return 0;
}
