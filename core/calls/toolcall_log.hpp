#pragma once

// The tool-call log: one JSON line per finished call in
// $EXAI_STATE_DIR/toolcalls.jsonl — time, session (short id), request id,
// tool, model, provider, duration, outcome, token usage and sizes. Prompt
// text, arguments and outputs only with `content` on; provider keys never
// (scrubbed from every line). Size-rotated: past max_bytes the file becomes
// toolcalls.jsonl.1 (older ones shift up, `keep` are kept); the live name is
// replaced in one rename, so a reader never finds it missing.
//
// record() only queues (a bounded queue; the engine calls it as a call
// ends); one writer thread formats, writes and rotates — what ends within a
// few milliseconds in one batch, one write — and also logs a one-line
// summary to the "activity" logger. The writer thread ("exai-toolcalls") runs
// at nice 10: its bursts must not take a core from the event loops. The
// writer also keeps, for the operator view, the last few calls' summaries and
// calls and errors per minute, so the view costs a call nothing it does not
// already pay.

#include "core/calls/call_result.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace exai::core {

struct ToolCallRecord {
  std::chrono::system_clock::time_point time; // when the call ended
  std::string session_id;                     // logged as a short id
  std::string request_id;
  std::string tool;
  std::string model; // the plan's; the result's model_used wins when present
  std::string provider;
  std::chrono::milliseconds duration{0};
  std::shared_ptr<const nlohmann::json> arguments; // may be null
  std::shared_ptr<const ToolResult> result;
};

class ToolCallLog {
public:
  struct Options {
    std::string path; // the live file
    std::size_t max_bytes = std::size_t{10} << 20U;
    int keep = 3;                     // rotated files kept (path.1 … path.keep)
    bool content = false;             // arguments, outputs and error messages too
    std::vector<std::string> secrets; // scrubbed from every line
    std::size_t max_queued = 4096;    // records waiting for the writer; more are dropped
    std::size_t recent = 50;          // summaries kept in memory for recent()
    bool recent_content = false;      // recent() with prompt and output excerpts too
  };

  // Finished calls in one minute (by the time each call ended).
  struct MinuteCount {
    std::int64_t minute = 0; // minutes since the epoch
    std::uint64_t calls = 0;
    std::uint64_t errors = 0; // every outcome but ok
  };
  static constexpr std::size_t kMinutesKept = 60;

  explicit ToolCallLog(Options options);
  // Writes what is queued, then stops the writer.
  ~ToolCallLog();
  ToolCallLog(const ToolCallLog&) = delete;
  ToolCallLog& operator=(const ToolCallLog&) = delete;

  // Queues one finished call. Never blocks on I/O; drops (and counts) the
  // record when the queue is full.
  void record(ToolCallRecord record);

  // Waits until every record queued before this call is written.
  void flush();

  const std::string& path() const noexcept { return options_.path; }
  std::uint64_t dropped() const;

  // The JSON line of `record` (without the newline), as written.
  std::string line(const ToolCallRecord& record) const;

  // The last Options::recent calls written, newest first: the line's fields
  // without content, plus "prompt" and "output" excerpts (scrubbed) when
  // Options::recent_content is on.
  std::vector<nlohmann::json> recent() const;
  // Calls and errors per minute over the last kMinutesKept minutes that had
  // calls, oldest first.
  std::vector<MinuteCount> per_minute() const;

  // The last `count` lines of the log (its newest rotated file first when
  // the live one holds fewer), oldest first, parsed. The files are read
  // between rotations: one between reading the live file and the rotated one
  // would give the same lines twice.
  std::vector<nlohmann::json> last(std::size_t count) const;

private:
  // Appends the line's members without content (what recent() keeps) to
  // `out`, opening the object; the caller closes it.
  void write_fields(std::string& out, const ToolCallRecord& record) const;
  // Closes `out` (write_fields' text) into the line: content members when
  // Options::content is on, then scrubbed.
  std::string finish_line(std::string out, const ToolCallRecord& record) const;
  // Arguments, output and error text (Options::content).
  static void write_content(std::string& out, const ToolCallRecord& record);
  // What recent() keeps of a call, as text: parsed only when the operator
  // view asks, so a call pays no JSON tree for it.
  struct RecentCall {
    std::string fields; // the line's members without content, scrubbed
    std::optional<std::string> prompt;
    std::optional<std::string> output;
  };
  // The summary recent() keeps: `fields` (write_fields' text, unclosed),
  // plus scrubbed prompt and answer excerpts with Options::recent_content.
  RecentCall summary(const ToolCallRecord& record, const std::string& fields) const;
  void write_loop(const std::stop_token& stop);
  // Recent summaries and per-minute counts of a written batch (under mutex_).
  void remember(const std::vector<ToolCallRecord>& batch,
                std::vector<RecentCall>& summaries,
                std::deque<RecentCall>& evicted);
  bool open_file();                     // opens the live file when closed; false if it cannot
  bool fits(std::size_t bytes) const;   // whether `bytes` more stay within max_bytes
  void append(const std::string& text); // whole lines; rotates first when they do not fit
  void rotate();

  Options options_;
  mutable std::mutex mutex_;
  std::condition_variable_any changed_;
  std::deque<ToolCallRecord> queue_; // guarded by mutex_
  std::uint64_t queued_total_ = 0;   // guarded by mutex_
  std::uint64_t written_total_ = 0;  // guarded by mutex_ (written or dropped by the writer)
  std::uint64_t dropped_ = 0;        // guarded by mutex_
  int flushing_ = 0;                 // guarded by mutex_: flush() callers waiting
  std::deque<RecentCall> recent_;    // guarded by mutex_, newest last
  std::deque<MinuteCount> minutes_;  // guarded by mutex_, newest last
  mutable std::mutex files_mutex_;   // held by rotate() and last()
  int fd_ = -1;                      // writer thread only
  std::size_t size_ = 0;             // writer thread only
  std::jthread writer_;              // last: stops first
};

} // namespace exai::core
