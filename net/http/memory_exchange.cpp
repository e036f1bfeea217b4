#include "net/http/memory_exchange.hpp"

#include <fstream>

namespace exai::net::http {

std::ostream&
MemoryResponse::send()
{
  sent_ = true;
  return body_;
}

void
MemoryResponse::sendFile(const std::string& path, const std::string& media_type)
{
  sent_ = true;
  std::ifstream in(path, std::ios::binary);
  body_ << in.rdbuf();
  setContentType(media_type);
}

void
MemoryResponse::sendBuffer(const void* buffer, std::size_t length)
{
  sent_ = true;
  body_.write(static_cast<const char*>(buffer), static_cast<std::streamsize>(length));
}

void
MemoryResponse::redirect(const std::string& uri, HTTPStatus status)
{
  sent_ = true;
  setStatusAndReason(status);
  set("Location", uri);
}

void
MemoryResponse::requireAuthentication(const std::string& realm)
{
  sent_ = true;
  setStatusAndReason(HTTP_UNAUTHORIZED);
  set("WWW-Authenticate", "Basic realm=\"" + realm + "\"");
}

std::string
MemoryResponse::serialize(bool head_request)
{
  const std::string body = body_.str();
  setChunkedTransferEncoding(false);
  setContentLength64(static_cast<Poco::Int64>(body.size()));
  std::ostringstream out;
  write(out);
  if (!head_request) {
    out << body;
  }
  return out.str();
}

std::string
MemoryResponse::stream_head()
{
  sent_ = true;
  setChunkedTransferEncoding(false);
  setKeepAlive(false);
  erase(Poco::Net::HTTPMessage::CONTENT_LENGTH);
  std::ostringstream out;
  write(out);
  return out.str();
}

MemoryRequest::MemoryRequest(std::string_view bytes,
                             std::size_t head_bytes,
                             Poco::Net::SocketAddress client,
                             Poco::Net::SocketAddress server,
                             const Poco::Net::HTTPServerParams& params,
                             MemoryResponse& response)
    : body_(std::string(bytes.substr(head_bytes)))
    , client_(std::move(client))
    , server_(std::move(server))
    , params_(params)
    , response_(response)
{
  std::istringstream head{std::string(bytes.substr(0, head_bytes))};
  read(head);
}

} // namespace exai::net::http
