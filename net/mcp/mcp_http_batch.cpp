// JSON-RPC batches on /mcp (2024-11-05 and 2025-03-26 sessions): every
// message of the batch is handled as if sent alone, and the answers leave as
// one JSON array once the last tool call of the batch has ended.

#include "core/mcp/mcp_prompts.hpp"
#include "core/mcp/mcp_protocol.hpp"
#include "core/util/text.hpp"
#include "net/mcp/mcp_http.hpp"

#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>

namespace exai::net {

namespace {

using nlohmann::json;
using Poco::Net::HTTPResponse;
namespace mcp = core::mcp;

} // namespace

// The answers of one batch; the last one in writes them all. Cancels the
// batch's calls when the client leaves before that.
class McpHttpService::BatchReply final : public ResponseStream::Listener {
public:
  void expect()
  {
    const std::lock_guard lock(mutex_);
    ++expected_;
  }
  void add_call(const std::shared_ptr<McpHttpCall>& call) { calls_.push_back(call); }

  void add(std::string response)
  {
    const std::lock_guard lock(mutex_);
    responses_.push_back(std::move(response));
    flush();
  }

  // True when the batch answers anything (else 202).
  bool answers() const
  {
    const std::lock_guard lock(mutex_);
    return expected_ > 0 || !responses_.empty();
  }

  void attach(std::shared_ptr<ResponseStream> stream)
  {
    const std::lock_guard lock(mutex_);
    stream_ = std::move(stream);
    flush();
  }

  void on_stream_closed() noexcept override
  {
    std::vector<std::weak_ptr<McpHttpCall>> calls;
    {
      const std::lock_guard lock(mutex_);
      if (written_) {
        return;
      }
      calls = calls_;
    }
    for (const auto& weak : calls) {
      if (const auto call = weak.lock()) {
        call->cancel_from_client();
      }
    }
  }

private:
  void flush() // mutex_ held
  {
    if (stream_ && !written_ && responses_.size() == expected_) {
      written_ = true;
      stream_->write(mcp::batch_response(responses_));
      stream_->end();
    }
  }

  mutable std::mutex mutex_;
  std::size_t expected_ = 0;                      // guarded: answers the batch will have
  std::vector<std::string> responses_;            // guarded
  std::shared_ptr<ResponseStream> stream_;        // guarded
  std::vector<std::weak_ptr<McpHttpCall>> calls_; // set before attach()
  bool written_ = false;                          // guarded
};

void
McpHttpService::handle_batch(HttpExchange& exchange,
                             const std::string& session_id,
                             const mcp::Batch& batch)
{
  auto& response = exchange.response();
  if (batch.refused) {
    HttpRouter::send_json(response,
                          HTTPResponse::HTTP_BAD_REQUEST,
                          mcp::error_response(nullptr, batch.refused->error));
    return;
  }
  auto reply = std::make_shared<BatchReply>();
  struct Started {
    std::shared_ptr<McpHttpCall> call;
    std::string tool;
    json arguments;
  };
  std::vector<Started> calls;
  for (const auto& message : batch.messages) {
    mcp::Action action = mcp::route(message, EXAI_VERSION);
    if (message.kind == mcp::Message::Kind::request && message.method == "initialize") {
      reply->expect();
      reply->add(mcp::error_response(message.id,
                                     mcp::RpcError{mcp::kInvalidRequest,
                                                   "Invalid Request: initialize cannot be batched",
                                                   {}}));
      continue;
    }
    switch (action.type) {
    case mcp::Action::Type::none:
      break;
    case mcp::Action::Type::cancel:
      cancel_call(session_id, action.cancel_id);
      break;
    case mcp::Action::Type::respond:
      remember_log_level(session_id, action);
      reply->expect();
      reply->add(action.response);
      break;
    case mcp::Action::Type::list_tools:
    case mcp::Action::Type::list_prompts:
    case mcp::Action::Type::get_prompt:
    case mcp::Action::Type::complete:
      reply->expect();
      reply->add(list_response(action));
      break;
    case mcp::Action::Type::call_tool: {
      reply->expect();
      auto call = make_call(session_id,
                            action.id,
                            action.call.name,
                            action.call.arguments,
                            action.call.progress_token,
                            false,
                            mcp::EventId{instance_, next_stream_++, 0, action.id},
                            [reply](std::string answer) { reply->add(std::move(answer)); });
      if (!register_call(session_id, call, false, {})) {
        reply->add(mcp::error_response(
            action.id, mcp::RpcError{mcp::kInvalidRequest, "request id already in progress", {}}));
        break;
      }
      reply->add_call(call);
      calls.push_back(Started{call, action.call.name, action.call.arguments});
      break;
    }
    }
  }
  if (!reply->answers()) {
    response.setStatusAndReason(HTTPResponse::HTTP_ACCEPTED);
    response.setContentLength(0);
    response.send();
    return;
  }
  response.setStatusAndReason(HTTPResponse::HTTP_OK);
  response.setContentType("application/json");
  response.set("Cache-Control", "no-cache");
  auto stream = exchange.start_stream();
  stream->set_listener(reply);
  reply->attach(stream);
  for (const auto& started : calls) {
    submit(started.call, started.tool, started.arguments);
  }
}

} // namespace exai::net
