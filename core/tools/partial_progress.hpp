#pragma once

// Progress notes that carry a streamed answer's partial output, so a client
// (WebSocket progress frames, MCP progress notifications) sees the model
// working. Throttled: a note per interval at most, however fast pieces come.

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace exai::core {

inline constexpr std::chrono::milliseconds kPartialProgressInterval{250};
// The end of the partial output a note carries: a note stays small however
// long the answer grows.
inline constexpr std::size_t kPartialProgressTail = 480;
// How every partial note begins (the engine marks such a call "streaming").
inline constexpr std::string_view kStreamingNotePrefix = "streaming from ";

// "streaming from MODEL (N chars): …TAIL" — TAIL the last `tail` bytes of
// `content`, cut at a UTF-8 character boundary.
std::string partial_note(std::string_view model,
                         std::string_view content,
                         std::size_t tail = kPartialProgressTail);

// A ChatRequest::on_partial that turns the content so far into progress
// notes, at most one per `interval`, the first one `interval` after it was
// made: an answer that streams in faster needs no note (it arrives whole in
// the result), and a fast call costs no extra frame.
class PartialProgress {
public:
  using Clock = std::chrono::steady_clock;
  PartialProgress(std::function<void(std::string_view note)> progress,
                  std::string model,
                  std::chrono::milliseconds interval = kPartialProgressInterval,
                  std::function<Clock::time_point()> now = Clock::now);

  void operator()(std::string_view content);

private:
  std::function<void(std::string_view)> progress_;
  std::string model_;
  std::chrono::milliseconds interval_;
  std::function<Clock::time_point()> now_;
  Clock::time_point last_;
};

} // namespace exai::core
