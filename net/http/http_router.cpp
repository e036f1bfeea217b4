#include "net/http/http_router.hpp"

#include "core/mcp/mcp_protocol.hpp"
#include "net/http/response_stream.hpp"

#include <nlohmann/json.hpp>

namespace exai::net {

void
HttpRouter::add(std::string method, std::string path, Handler handler)
{
  routes_[{std::move(path), std::move(method)}] = std::move(handler);
}

std::shared_ptr<ResponseStream>
HttpExchange::start_stream()
{
  streaming_ = true;
  return start_stream_();
}

void
HttpRouter::dispatch(HttpExchange& exchange) const
{
  auto& request = exchange.request();
  auto& response = exchange.response();
  std::string path = request.getURI();
  if (const auto q = path.find('?'); q != std::string::npos) {
    path.resize(q);
  }
  const auto it = routes_.find({path, request.getMethod()});
  if (it != routes_.end()) {
    it->second(exchange);
    return;
  }
  std::string allow;
  for (auto r = routes_.lower_bound({path, ""}); r != routes_.end() && r->first.first == path;
       ++r) {
    allow += (allow.empty() ? "" : ", ") + r->first.second;
  }
  if (!allow.empty()) {
    response.set("Allow", allow);
    send_refusal(path,
                 response,
                 Poco::Net::HTTPResponse::HTTP_METHOD_NOT_ALLOWED,
                 "METHOD_NOT_ALLOWED",
                 request.getMethod() + " is not allowed on " + path);
    return;
  }
  send_error(response,
             Poco::Net::HTTPResponse::HTTP_NOT_FOUND,
             "NOT_FOUND",
             "no route for " + request.getMethod() + " " + path);
}

void
HttpRouter::send_json(Poco::Net::HTTPServerResponse& response,
                      Poco::Net::HTTPResponse::HTTPStatus status,
                      const std::string& body)
{
  response.setStatusAndReason(status);
  response.setContentType("application/json");
  response.setContentLength(static_cast<std::streamsize>(body.size()));
  response.send().write(body.data(), static_cast<std::streamsize>(body.size()));
}

void
HttpRouter::send_error(Poco::Net::HTTPServerResponse& response,
                       Poco::Net::HTTPResponse::HTTPStatus status,
                       std::string_view code,
                       std::string_view message)
{
  const nlohmann::json body{{"error", {{"code", code}, {"message", message}}}};
  send_json(response, status, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

void
HttpRouter::send_refusal(std::string_view path,
                         Poco::Net::HTTPServerResponse& response,
                         Poco::Net::HTTPResponse::HTTPStatus status,
                         std::string_view code,
                         std::string_view message)
{
  if (path.substr(0, path.find('?')) != "/mcp") {
    send_error(response, status, code, message);
    return;
  }
  send_json(
      response,
      status,
      core::mcp::error_response(nullptr,
                                core::mcp::RpcError{core::mcp::kInvalidRequest,
                                                    std::string(message),
                                                    nlohmann::json{{"code", std::string(code)}}}));
}

} // namespace exai::net
