#pragma once

// Server-sent events (the WHATWG event-stream format) as providers stream a
// chat completion. Pure and incremental: fed the body in whatever pieces
// the network delivers, it reports each complete event once.

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace exai::core::sse {

// One dispatched event: its `event:` type ("" when none was given) and its
// `data:` lines joined by "\n".
struct Event {
  std::string_view type;
  std::string_view data;
};

using EventFn = std::function<void(const Event& event)>;

// Splits a byte stream into events. Lines end in "\n", "\r\n" or "\r" (a
// "\r\n" split across two pieces counts once); a blank line dispatches the
// event; ":" lines are comments; `id:` and `retry:` are ignored.
class Parser {
public:
  // An event (or a line) bigger than `max_event_bytes` stops the parser:
  // a client must bound what one peer makes it buffer.
  explicit Parser(std::size_t max_event_bytes = std::size_t{16} << 20U);

  // Parses `bytes`, calling `on_event` for every event they complete.
  // Returns false once the size limit was crossed (then and ever after).
  bool feed(std::string_view bytes, const EventFn& on_event);

  // The input ended: an event whose blank line never came is dispatched
  // anyway (providers that close right after their last data line).
  bool finish(const EventFn& on_event);

  bool too_large() const noexcept { return too_large_; }

private:
  void line_done(const EventFn& on_event);
  void dispatch(const EventFn& on_event);

  std::size_t max_;
  std::string line_; // the line being read
  std::string data_; // data of the event being read, lines joined by "\n"
  std::string type_; // its `event:` field
  bool has_data_ = false;
  bool after_cr_ = false; // the last byte ended a line with "\r"
  bool too_large_ = false;
};

} // namespace exai::core::sse
