#include "net/http/request_head.hpp"

#include <Poco/Exception.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/String.h>
#include <nlohmann/json.hpp>

#include <sstream>

namespace exai::net::http {

HeadCheck
inspect_request_head(std::string_view bytes, std::size_t max_head_bytes) noexcept
{
  HeadCheck check;
  const std::string_view window = bytes.substr(0, max_head_bytes);
  const auto end = window.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    check.status = bytes.size() >= max_head_bytes ? HeadCheck::Status::too_large
                                                  : HeadCheck::Status::incomplete;
    return check;
  }
  check.head_bytes = end + 4;
  try {
    std::istringstream in(std::string(bytes.substr(0, check.head_bytes)));
    Poco::Net::HTTPRequest request;
    request.read(in);
    if (request.getChunkedTransferEncoding()) {
      check.chunked = true;
    } else if (request.hasContentLength()) {
      const Poco::Int64 length = request.getContentLength64();
      if (length < 0) {
        check.status = HeadCheck::Status::malformed;
        check.error = "negative Content-Length";
        return check;
      }
      check.content_length = static_cast<std::uint64_t>(length);
    }
    check.expect_continue = request.getExpectContinue();
    const std::string upgrade = request.get("Upgrade", std::string());
    check.upgrade = Poco::icompare(upgrade, "websocket") == 0;
    check.status = HeadCheck::Status::complete;
  } catch (const Poco::Exception& e) {
    check.status = HeadCheck::Status::malformed;
    check.error = e.displayText();
  } catch (const std::exception& e) {
    check.status = HeadCheck::Status::malformed;
    check.error = e.what();
  }
  return check;
}

std::string
error_response(Poco::Net::HTTPResponse::HTTPStatus status,
               std::string_view code,
               std::string_view message)
{
  const std::string body = nlohmann::json{{"error", {{"code", code}, {"message", message}}}}.dump(
      -1, ' ', false, nlohmann::json::error_handler_t::replace);
  Poco::Net::HTTPResponse response(Poco::Net::HTTPMessage::HTTP_1_1, status);
  response.setContentType("application/json");
  response.setContentLength(static_cast<std::streamsize>(body.size()));
  response.setKeepAlive(false);
  std::ostringstream out;
  response.write(out);
  out << body;
  return out.str();
}

std::string
continue_response()
{
  Poco::Net::HTTPResponse response(Poco::Net::HTTPMessage::HTTP_1_1,
                                   Poco::Net::HTTPResponse::HTTP_CONTINUE);
  std::ostringstream out;
  response.write(out);
  return out.str();
}

} // namespace exai::net::http
