#include "tests/support/broken_daemon.hpp"

#include "tests/support/handler_factory.hpp"

#include <Poco/Buffer.h>
#include <Poco/Exception.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/Net/WebSocket.h>
#include <Poco/ThreadPool.h>
#include <nlohmann/json.hpp>

#include <string>

namespace exai::test {

using nlohmann::json;
using Poco::Net::WebSocket;

struct BrokenDaemon::Impl {
  explicit Impl(Fault f)
      : fault(f)
  {
  }
  const Fault fault;
  std::atomic<std::size_t> calls{0};
  std::atomic<long> connections{0};
  std::atomic<bool> stopping{false};
  Poco::ThreadPool threads{2, 32};
  std::unique_ptr<Poco::Net::HTTPServer> server; // after `threads`: destroyed first

  json health() const
  {
    const bool leaking = fault == Fault::leak_in_use && calls.load() > 0;
    const json idle = {{"capacity", 8}, {"in_use", 0}, {"waiting", 0}};
    json global = idle;
    global["in_use"] = leaking ? 1 : 0;
    return {
        {"state", "serving"},
        {"pid", 0},
        {"sessions", connections.load()},
        {"connections", connections.load()},
        {"inflight_calls", 0},
        {"executions", 0},
        {"queued", 0},
        {"rss_bytes", 10 * 1024 * 1024},
        {"capacity",
         {{"global", global},
          {"providers", {{"kimi", idle}, {"glm", idle}}},
          {"sessions", {{"capacity", 8}, {"in_use", 0}, {"waiting", 0}, {"limiters", 0}}},
          {"conversations", {{"capacity", 1}, {"in_use", 0}, {"waiting", 0}, {"limiters", 0}}}}}};
  }

  // The replies to one frame.
  void answer(WebSocket& ws, const std::string& text)
  {
    const auto send = [&ws](const json& frame) {
      const std::string out = frame.dump();
      ws.sendFrame(out.data(), static_cast<int>(out.size()), WebSocket::FRAME_TEXT);
    };
    const json frame = json::parse(text, nullptr, false);
    if (frame.is_discarded() || !frame.is_object()) {
      send({{"op", "error"},
            {"error", {{"code", "VALIDATION_ERROR"}, {"message", "not JSON"}, {"details", {}}}}});
      return;
    }
    const std::string op = frame.value("op", "");
    const std::string id = frame.value("request_id", "");
    const std::string name = frame.value("name", "");
    if (op == "hello") {
      send({{"op", "hello_ack"}, {"ok", true}, {"session_id", "broken-session"}});
    } else if (op == "health") {
      send({{"op", "health_res"}, {"ok", true}, {"health", health()}});
    } else if (op == "cancel_tool") {
      send({{"op", "error"},
            {"request_id", id},
            {"error", {{"code", "INVALID_REQUEST"}, {"message", "not running"}, {"details", {}}}}});
    } else if (op == "call_tool") {
      const std::size_t n = ++calls;
      json progress = {{"op", "progress"},
                       {"request_id", id},
                       {"name", name},
                       {"t", 0},
                       {"note", "accepted, awaiting provider/session capacity"}};
      if (fault == Fault::missing_request_id && n == 2) {
        progress.erase("request_id");
      }
      send(progress);
      send({{"op", "call_tool_ack"},
            {"request_id", id},
            {"accepted", true},
            {"timeout", 270},
            {"name", name}});
      if (fault == Fault::drop_result && n == 3) {
        return;
      }
      send({{"op", "call_tool_res"},
            {"request_id", id},
            {"outputs", {{{"type", "text"}, {"text", "{}"}}}},
            {"text", "{}"}});
    } else {
      send({{"op", "error"},
            {"error", {{"code", "PROTOCOL_ERROR"}, {"message", "Unknown operation"}}}});
    }
  }
};

namespace {

class Handler : public Poco::Net::HTTPRequestHandler {
public:
  explicit Handler(BrokenDaemon::Impl& impl)
      : impl_(impl)
  {
  }

  void handleRequest(Poco::Net::HTTPServerRequest& request,
                     Poco::Net::HTTPServerResponse& response) override
  {
    try {
      WebSocket ws(request, response);
      ws.setReceiveTimeout(Poco::Timespan(0, 100000));
      ++impl_.connections;
      serve(ws);
      --impl_.connections;
    } catch (const Poco::Exception&) {
      if (!response.sent()) {
        response.setStatusAndReason(Poco::Net::HTTPResponse::HTTP_BAD_REQUEST);
        response.send();
      }
    }
  }

private:
  void serve(WebSocket& ws)
  {
    Poco::Buffer<char> buffer(0);
    while (!impl_.stopping) {
      int flags = 0;
      buffer.resize(0);
      try {
        const int n = ws.receiveFrame(buffer, flags);
        const int opcode = flags & WebSocket::FRAME_OP_BITMASK;
        if ((n == 0 && flags == 0) || opcode == WebSocket::FRAME_OP_CLOSE) {
          return;
        }
        if (opcode == WebSocket::FRAME_OP_TEXT || opcode == WebSocket::FRAME_OP_BINARY) {
          impl_.answer(ws, std::string(buffer.begin(), buffer.size()));
        }
      } catch (const Poco::TimeoutException&) {
        continue; // look at `stopping` again
      } catch (const Poco::Exception&) {
        return;
      }
    }
  }

  BrokenDaemon::Impl& impl_;
};

using Factory = HandlerFactory<Handler, BrokenDaemon::Impl>;

} // namespace

BrokenDaemon::BrokenDaemon(Fault fault)
    : impl_(std::make_unique<Impl>(fault))
{
  Poco::Net::ServerSocket socket(Poco::Net::SocketAddress("127.0.0.1", 0));
  port_ = socket.address().port();
  auto* params = new Poco::Net::HTTPServerParams; // Poco takes ownership
  params->setMaxThreads(32);
  params->setMaxQueued(64);
  impl_->server = std::make_unique<Poco::Net::HTTPServer>(
      new Factory(*impl_), impl_->threads, socket, params); // Poco owns
  impl_->server->start();
}

BrokenDaemon::~BrokenDaemon()
{
  impl_->stopping = true;
  impl_->server->stopAll(true);
  impl_->threads.joinAll();
}

std::size_t
BrokenDaemon::calls() const noexcept
{
  return impl_->calls.load();
}

} // namespace exai::test
