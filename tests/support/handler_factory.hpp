#pragma once

// The Poco request handler factory of the test servers: one `Handler` per
// request, built over the server's shared state.

#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServerRequest.h>

namespace exai::test {

template <typename Handler, typename State>
class HandlerFactory final : public Poco::Net::HTTPRequestHandlerFactory {
public:
  explicit HandlerFactory(State& state)
      : state_(state)
  {
  }
  Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override
  {
    return new Handler(state_); // Poco takes ownership
  }

private:
  State& state_;
};

} // namespace exai::test
