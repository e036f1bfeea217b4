#pragma once

// An HTTP request and its response held in memory, behind Poco's own
// request/response interfaces, so handlers are written against Poco as usual.
// The event loop receives the whole request (head and body, under one
// deadline) before any thread sees it, and sends the response bytes itself:
// no thread ever blocks on a client's socket, and a slow body holds nothing
// but its own buffer. Poco parses the head (HTTPRequest::read) and formats the
// response head (HTTPResponse::write).

#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/SocketAddress.h>

#include <sstream>
#include <string>
#include <string_view>

namespace exai::net::http {

class MemoryResponse final : public Poco::Net::HTTPServerResponse {
public:
  MemoryResponse() = default;

  void sendContinue() override {} // the loop sent "100 Continue" already
  std::ostream& send() override;
  void sendFile(const std::string& path, const std::string& media_type) override;
  void sendBuffer(const void* buffer, std::size_t length) override;
  void redirect(const std::string& uri, HTTPStatus status) override;
  void requireAuthentication(const std::string& realm) override;
  bool sent() const override { return sent_; }

  // The complete response (head with Content-Length, then the body; no body
  // for a HEAD request).
  std::string serialize(bool head_request);
  // Only the head, for a response whose body follows later and ends with the
  // connection ("Connection: close", no length).
  std::string stream_head();

private:
  std::ostringstream body_;
  bool sent_ = false;
};

class MemoryRequest final : public Poco::Net::HTTPServerRequest {
public:
  // Parses the head (the first `head_bytes` of `bytes`); the rest is the body.
  // Throws Poco::Net::MessageException for a malformed head.
  MemoryRequest(std::string_view bytes,
                std::size_t head_bytes,
                Poco::Net::SocketAddress client,
                Poco::Net::SocketAddress server,
                const Poco::Net::HTTPServerParams& params,
                MemoryResponse& response);

  std::istream& stream() override { return body_; }
  const Poco::Net::SocketAddress& clientAddress() const override { return client_; }
  const Poco::Net::SocketAddress& serverAddress() const override { return server_; }
  const Poco::Net::HTTPServerParams& serverParams() const override { return params_; }
  Poco::Net::HTTPServerResponse& response() const override { return response_; }
  bool secure() const override { return false; }

private:
  std::istringstream body_;
  Poco::Net::SocketAddress client_;
  Poco::Net::SocketAddress server_;
  const Poco::Net::HTTPServerParams& params_;
  MemoryResponse& response_;
};

} // namespace exai::net::http
