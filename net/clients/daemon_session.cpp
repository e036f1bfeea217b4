#include "net/clients/daemon_session.hpp"

#include "core/error.hpp"
#include "net/protocol/op_protocol.hpp"
#include "net/util/poco_time.hpp"

#include <Poco/Buffer.h>
#include <Poco/Exception.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/NetException.h>
#include <Poco/URI.h>

#include <algorithm>
#include <variant>

namespace exai::net {

namespace {

using Poco::Net::WebSocket;

} // namespace

std::string
DaemonAddress::ws_url() const
{
  Poco::URI uri;
  uri.setScheme("ws");
  uri.setHost(host);
  uri.setPort(port);
  uri.setPath(path.empty() ? "/" : path);
  return uri.toString();
}

std::string
DaemonAddress::http_url() const
{
  Poco::URI uri;
  uri.setScheme("http");
  uri.setHost(host);
  uri.setPort(port);
  return uri.toString();
}

DaemonAddress
DaemonAddress::from(const core::DaemonConfig& config)
{
  DaemonAddress address;
  address.host = config.host;
  if (address.host.empty() || address.host == "0.0.0.0") {
    address.host = "127.0.0.1";
  } else if (address.host == "::") {
    address.host = "::1";
  }
  address.port = config.port;
  address.token = config.token;
  return address;
}

void
apply_url(DaemonAddress& address, const std::string& url, std::string_view flag)
{
  const auto invalid = [&](const std::string& why) {
    return core::Error(core::Errc::config_invalid,
                       std::string(flag) + " " + url + ": " + why +
                           " (expected ws://HOST[:PORT][/PATH])");
  };
  Poco::URI uri;
  try {
    uri = Poco::URI(url);
  } catch (const Poco::Exception& e) {
    throw invalid(e.displayText());
  }
  if (uri.getScheme() != "ws") {
    throw invalid("the scheme must be ws");
  }
  if (uri.getHost().empty()) {
    throw invalid("no host");
  }
  if (uri.getPort() == 0) {
    throw invalid("the port must be in 1..65535");
  }
  address.host = uri.getHost();
  address.port = uri.getPort();
  address.path = uri.getPathEtc().empty() ? "/" : uri.getPathEtc();
}

OpenedSession
open_session(const DaemonAddress& address,
             std::chrono::milliseconds timeout,
             std::string_view client_name,
             const std::string& resume,
             std::size_t max_payload)
{
  OpenedSession opened;
  try {
    // The session only performs the upgrade; the WebSocket takes over its
    // socket and any bytes it had buffered.
    Poco::Net::HTTPClientSession http(address.host, address.port);
    http.setTimeout(to_timespan(timeout));
    Poco::Net::HTTPRequest request(
        Poco::Net::HTTPRequest::HTTP_GET, address.path, Poco::Net::HTTPMessage::HTTP_1_1);
    Poco::Net::HTTPResponse response;
    try {
      opened.socket = std::make_unique<WebSocket>(http, request, response);
    } catch (const Poco::Net::WebSocketException& e) {
      if (response.getStatus() != Poco::Net::HTTPResponse::HTTP_SWITCHING_PROTOCOLS &&
          response.getStatus() != 0) {
        const auto status = response.getStatus();
        throw DaemonRefused("upgrade refused by " + address.ws_url() + ": HTTP " +
                                std::to_string(status) + " " + response.getReason(),
                            status == Poco::Net::HTTPResponse::HTTP_UNAUTHORIZED ||
                                status == Poco::Net::HTTPResponse::HTTP_FORBIDDEN);
      }
      throw DaemonUnreachable("cannot connect to " + address.ws_url() + ": " + e.displayText());
    }
    auto& ws = *opened.socket;
    ws.setReceiveTimeout(to_timespan(timeout));
    ws.setSendTimeout(to_timespan(timeout));
    ws.setNoDelay(true);
    ws.setMaxPayloadSize(
        static_cast<int>(std::min<std::size_t>(max_payload, std::size_t{1} << 30U)));
    const std::string hello = protocol::hello_frame(address.token, resume, client_name);
    ws.sendFrame(hello.data(), static_cast<int>(hello.size()), WebSocket::FRAME_TEXT);
    Poco::Buffer<char> buffer(0);
    int flags = 0;
    for (;;) {
      buffer.resize(0);
      const int n = ws.receiveFrame(buffer, flags);
      const int opcode = flags & WebSocket::FRAME_OP_BITMASK;
      if (opcode == WebSocket::FRAME_OP_PING || opcode == WebSocket::FRAME_OP_PONG) {
        continue;
      }
      if (opcode == WebSocket::FRAME_OP_CLOSE || (n == 0 && flags == 0)) {
        // The daemon's close frame says why (e.g. 1008 "too many connections").
        if (buffer.size() >= 2) {
          const unsigned code =
              (static_cast<unsigned char>(buffer[0]) << 8U) | static_cast<unsigned char>(buffer[1]);
          throw DaemonRefused("refused at hello: close " + std::to_string(code) + " \"" +
                              std::string(buffer.begin() + 2, buffer.end()) + "\"");
        }
        throw DaemonUnreachable("the daemon closed the connection after hello");
      }
      break;
    }
    const auto ack = protocol::parse_hello_ack({buffer.begin(), buffer.size()});
    if (!ack) {
      throw DaemonUnreachable("the daemon did not answer hello with hello_ack");
    }
    if (!ack->ok) {
      const bool unauthorized = ack->error == "unauthorized";
      throw DaemonRefused("hello refused: " + ack->error +
                              (unauthorized ? " (check EXAI_WS_TOKEN)" : ""),
                          unauthorized);
    }
    opened.session_id = ack->session_id;
    opened.resumed = !resume.empty() && ack->session_id == resume;
    return opened;
  } catch (const Poco::Exception& e) {
    throw DaemonUnreachable("cannot connect to " + address.ws_url() + ": " + e.displayText());
  }
}

} // namespace exai::net
