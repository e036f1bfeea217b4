#include "core/calls/toolcall_log.hpp"

#include "core/log.hpp"
#include "core/util/json_text.hpp"
#include "core/util/text.hpp"

#include <spdlog/fmt/chrono.h>

#include <fcntl.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

namespace exai::core {

namespace {

using nlohmann::json;

constexpr std::size_t kMaxOutputChars = 16384; // content mode: output text kept per line
constexpr std::size_t kMaxIdBytes = 128;
constexpr std::size_t kRecentExcerptChars = 400; // operator view: prompt and output shown
constexpr std::chrono::milliseconds kBatchWindow{5};
constexpr int kWriterNice = 10;
constexpr const char* kWriterName = "exai-toolcalls";

std::string
iso_time(std::chrono::system_clock::time_point time)
{
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(time.time_since_epoch());
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:03}Z",
                     fmt::gmtime(std::chrono::system_clock::to_time_t(time)),
                     ms.count() % 1000);
}

std::string
scrub(std::string text, const std::vector<std::string>& secrets)
{
  for (const auto& secret : secrets) {
    if (secret.empty()) {
      continue;
    }
    const std::string replacement = log::redact(secret);
    for (auto pos = text.find(secret); pos != std::string::npos;
         pos = text.find(secret, pos + replacement.size())) {
      text.replace(pos, secret.size(), replacement);
    }
  }
  return text;
}

std::string
rotated(const std::string& path, int n)
{
  return path + "." + std::to_string(n);
}

} // namespace

ToolCallLog::ToolCallLog(Options options)
    : options_(std::move(options))
{
  writer_ = std::jthread([this](const std::stop_token& stop) { write_loop(stop); });
}

ToolCallLog::~ToolCallLog()
{
  writer_.request_stop();
  changed_.notify_all();
  writer_.join();
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

void
ToolCallLog::record(ToolCallRecord record)
{
  bool was_empty = false;
  {
    const std::lock_guard lock(mutex_);
    if (queue_.size() >= options_.max_queued) {
      ++dropped_;
      return;
    }
    was_empty = queue_.empty();
    queue_.push_back(std::move(record));
    ++queued_total_;
  }
  // The writer sleeps only on an empty queue: under load, calls queue their
  // records without a wake-up each.
  if (was_empty) {
    changed_.notify_all();
  }
}

void
ToolCallLog::flush()
{
  std::unique_lock lock(mutex_);
  const std::uint64_t target = queued_total_;
  ++flushing_; // cuts the writer's batch window short
  changed_.notify_all();
  changed_.wait(lock, [&] { return written_total_ >= target; });
  --flushing_;
}

std::uint64_t
ToolCallLog::dropped() const
{
  const std::lock_guard lock(mutex_);
  return dropped_;
}

std::string
ToolCallLog::line(const ToolCallRecord& record) const
{
  std::string out;
  out.reserve(320);
  write_fields(out, record);
  return finish_line(std::move(out), record);
}

std::string
ToolCallLog::finish_line(std::string out, const ToolCallRecord& record) const
{
  if (options_.content) {
    write_content(out, record);
  }
  out.push_back('}');
  return scrub(std::move(out), options_.secrets);
}

namespace {

// Members written one by one (values escaped by nlohmann): a tree built and
// dumped per call cost more than the rest of a cheap call.
void
add_member(std::string& out, std::string_view key, const json& value)
{
  out.append(out.empty() ? "{\"" : ",\"").append(key).append("\":");
  out.append(value.dump(-1, ' ', false, json::error_handler_t::replace));
}

} // namespace

void
ToolCallLog::write_fields(std::string& out, const ToolCallRecord& record) const
{
  std::string model = record.model;
  std::string provider = record.provider;
  std::string status;
  json usage;
  const ToolResult* result = record.result.get();
  const auto* failure = result != nullptr ? std::get_if<ToolFailure>(result) : nullptr;
  const auto* success = result != nullptr ? std::get_if<ToolSuccess>(result) : nullptr;
  if (success != nullptr && !success->outputs.empty()) {
    // Only the summary members are read, found by scanning: neither the
    // answer text nor the rest of the metadata is parsed (a tree of them cost
    // more than the rest of the line).
    const std::string_view output = success->outputs.front();
    status = top_level_string(output, "status").value_or("");
    if (const auto meta = top_level_member(output, "metadata")) {
      if (auto used = top_level_string(*meta, "model_used")) {
        model = std::move(*used);
      }
      if (auto used = top_level_string(*meta, "provider_used")) {
        provider = std::move(*used);
      }
      if (const auto raw = top_level_member(*meta, "usage"); raw && raw->starts_with('{')) {
        usage = json::parse(*raw, nullptr, false);
        if (!usage.is_object()) {
          usage = nullptr;
        }
      }
    }
  }
  add_member(out, "t", iso_time(record.time));
  add_member(out, "session", short_id(record.session_id));
  add_member(out, "request_id", printable(record.request_id, kMaxIdBytes));
  add_member(out, "tool", record.tool);
  add_member(out, "model", model);
  add_member(out, "provider", provider);
  add_member(out, "duration_ms", record.duration.count());
  if (failure != nullptr) {
    add_member(out, "outcome", protocol_code(failure->code));
    if (failure->details.is_object()) {
      // The field and rule name what was wrong without quoting the value.
      for (const char* key : {"field", "rule", "provider", "status", "upstream_code", "scope"}) {
        if (const auto it = failure->details.find(key); it != failure->details.end()) {
          std::string name = "error_";
          name.append(key);
          add_member(out, name, *it);
        }
      }
    }
    add_member(out, "result_bytes", failure->message.size());
  } else if (success != nullptr) {
    add_member(out, "outcome", "ok");
    std::size_t bytes = 0;
    for (const auto& text : success->outputs) {
      bytes += text.size();
    }
    add_member(out, "result_bytes", bytes);
    if (!status.empty()) {
      add_member(out, "status", status);
    }
    if (!usage.is_null()) {
      add_member(out, "usage", usage);
    }
  } else {
    add_member(out, "outcome", "UNKNOWN");
  }
  if (record.arguments) {
    add_member(out,
               "argument_bytes",
               record.arguments->dump(-1, ' ', false, json::error_handler_t::replace).size());
  }
}

void
ToolCallLog::write_content(std::string& out, const ToolCallRecord& record)
{
  if (const ToolResult* result = record.result.get()) {
    if (const auto* failure = std::get_if<ToolFailure>(result)) {
      add_member(out, "error", failure->message);
    } else if (const auto& success = std::get<ToolSuccess>(*result); !success.outputs.empty()) {
      add_member(out, "output", printable(success.outputs.front(), kMaxOutputChars));
    }
  }
  if (record.arguments) {
    add_member(out, "arguments", *record.arguments);
  }
}

ToolCallLog::RecentCall
ToolCallLog::summary(const ToolCallRecord& record, const std::string& fields) const
{
  RecentCall out{scrub(fields + "}", options_.secrets), {}, {}};
  if (!options_.recent_content) {
    return out;
  }
  const auto excerpt = [this](const std::string& text) {
    return scrub(printable(text, kRecentExcerptChars), options_.secrets);
  };
  if (record.arguments && record.arguments->is_object()) {
    for (const char* key : {"prompt", "step", "question"}) {
      const auto it = record.arguments->find(key);
      if (it != record.arguments->end() && it->is_string()) {
        out.prompt = excerpt(it->get<std::string>());
        break;
      }
    }
  }
  if (const ToolResult* result = record.result.get()) {
    if (const auto* failure = std::get_if<ToolFailure>(result)) {
      out.output = excerpt(failure->message);
    } else if (const auto& success = std::get<ToolSuccess>(*result); !success.outputs.empty()) {
      const auto content = top_level_string(success.outputs.front(), "content");
      out.output = excerpt(content ? *content : success.outputs.front());
    }
  }
  return out;
}

std::vector<json>
ToolCallLog::recent() const
{
  std::vector<RecentCall> copy;
  {
    const std::lock_guard lock(mutex_);
    copy.assign(recent_.rbegin(), recent_.rend());
  }
  std::vector<json> out;
  out.reserve(copy.size());
  for (auto& call : copy) {
    json item = json::parse(call.fields, nullptr, false);
    if (!item.is_object()) {
      continue;
    }
    if (call.prompt) {
      item["prompt"] = std::move(*call.prompt);
    }
    if (call.output) {
      item["output"] = std::move(*call.output);
    }
    out.push_back(std::move(item));
  }
  return out;
}

std::vector<ToolCallLog::MinuteCount>
ToolCallLog::per_minute() const
{
  const std::lock_guard lock(mutex_);
  return {minutes_.begin(), minutes_.end()};
}

void
ToolCallLog::write_loop(const std::stop_token& stop)
{
  // A batch is formatted in one burst; on a small machine that burst took a
  // core from the event loops and showed in the p99 of calls that never wait
  // for the log. Below normal priority the writer yields to them, and still
  // gets its share under sustained load (unlike an idle-only policy, which
  // could starve it and drop records).
  ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), kWriterNice);
  ::pthread_setname_np(::pthread_self(), kWriterName); // for top -H and the test
  const auto activity = log::get("activity");
  std::vector<ToolCallRecord> batch;
  std::vector<RecentCall> summaries;
  // What leaves memory is freed with the lock released, since calls queue
  // their records under it: the summaries recent_ drops and the records,
  // which may hold the last reference to a large result.
  std::deque<RecentCall> evicted;
  std::string text;
  std::string fields;
  std::unique_lock lock(mutex_);
  for (;;) {
    changed_.wait(lock, stop, [this] { return !queue_.empty(); });
    if (queue_.empty()) {
      return; // stopped with nothing left to write
    }
    // Calls that end in the next few milliseconds join this batch: under
    // load, one wake-up and one write serve hundreds of them.
    changed_.wait_for(lock, stop, kBatchWindow, [this] { return flushing_ > 0; });
    batch.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
    queue_.clear();
    lock.unlock();
    text.clear();
    open_file(); // the size so far decides where the batch is cut for rotation
    // Only the calls recent_ will keep get a summary.
    const std::size_t first_kept = batch.size() - std::min(batch.size(), options_.recent);
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const ToolCallRecord& record = batch[i];
      fields.clear();
      write_fields(fields, record);
      if (i >= first_kept) {
        summaries.push_back(summary(record, fields));
      }
      std::string next = finish_line(fields, record);
      next.push_back('\n');
      if (!text.empty() && size_ + text.size() + next.size() > options_.max_bytes) {
        append(text); // a file never grows past max_bytes because of batching
        text.clear();
      }
      text.append(next);
      const auto* failure = record.result ? std::get_if<ToolFailure>(record.result.get()) : nullptr;
      activity->info("call tool={} outcome={} duration_ms={} model={} session={} request_id={}",
                     record.tool,
                     failure != nullptr ? protocol_code(failure->code) : "ok",
                     record.duration.count(),
                     record.model.empty() ? "-" : record.model,
                     short_id(record.session_id),
                     printable(record.request_id, 64));
    }
    append(text);
    lock.lock();
    remember(batch, summaries, evicted);
    changed_.notify_all();
    lock.unlock();
    batch.clear();
    summaries.clear();
    evicted.clear();
    lock.lock();
  }
}

void
ToolCallLog::remember(const std::vector<ToolCallRecord>& batch,
                      std::vector<RecentCall>& summaries,
                      std::deque<RecentCall>& evicted)
{
  for (auto& item : summaries) {
    recent_.push_back(std::move(item));
    if (recent_.size() > options_.recent) {
      evicted.push_back(std::move(recent_.front()));
      recent_.pop_front();
    }
  }
  for (const auto& record : batch) {
    const std::int64_t minute =
        std::chrono::duration_cast<std::chrono::minutes>(record.time.time_since_epoch()).count();
    if (minutes_.empty() || minutes_.back().minute < minute) {
      minutes_.push_back(MinuteCount{minute, 0, 0});
      if (minutes_.size() > kMinutesKept) {
        minutes_.pop_front();
      }
    }
    ++minutes_.back().calls;
    const bool error = !record.result || std::holds_alternative<ToolFailure>(*record.result);
    minutes_.back().errors += error ? 1 : 0;
  }
  written_total_ += batch.size();
}

bool
ToolCallLog::open_file()
{
  if (fd_ >= 0) {
    return true;
  }
  if (options_.path.empty()) {
    return false;
  }
  fd_ = ::open(options_.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd_ < 0) {
    log::get("core")->warn(
        "tool-call log cannot be opened path={} error=\"{}\"", options_.path, std::strerror(errno));
    return false;
  }
  struct stat info {};
  size_ = ::fstat(fd_, &info) == 0 ? static_cast<std::size_t>(info.st_size) : 0;
  return true;
}

bool
ToolCallLog::fits(std::size_t bytes) const
{
  return size_ == 0 || size_ + bytes <= options_.max_bytes;
}

void
ToolCallLog::append(const std::string& text)
{
  if (!open_file()) {
    return;
  }
  if (!fits(text.size())) {
    rotate();
    if (!open_file()) {
      return;
    }
  }
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd_, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      log::get("core")->warn(
          "tool-call log write failed path={} error=\"{}\"", options_.path, std::strerror(errno));
      return;
    }
    done += static_cast<std::size_t>(n);
  }
  size_ += done;
}

void
ToolCallLog::rotate()
{
  const std::lock_guard files(files_mutex_);
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  size_ = 0;
  if (options_.keep > 0) {
    ::unlink(rotated(options_.path, options_.keep).c_str());
    for (int n = options_.keep - 1; n >= 1; --n) {
      ::rename(rotated(options_.path, n).c_str(), rotated(options_.path, n + 1).c_str());
    }
    // A hard link keeps the live name in place, so readers (toolcall_log_tail,
    // `tail -F`) never find the log missing while it rotates.
    if (::link(options_.path.c_str(), rotated(options_.path, 1).c_str()) != 0) {
      ::rename(options_.path.c_str(), rotated(options_.path, 1).c_str());
    }
  }
  // The fresh file replaces the live one in a single rename.
  const std::string fresh = options_.path + ".new";
  const int fd = ::open(fresh.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
  if (fd >= 0 && ::rename(fresh.c_str(), options_.path.c_str()) == 0) {
    fd_ = fd;
    return;
  }
  if (fd >= 0) {
    ::close(fd);
    ::unlink(fresh.c_str());
  }
  ::unlink(options_.path.c_str()); // open_file() starts it afresh
}

std::vector<json>
ToolCallLog::last(std::size_t count) const
{
  const auto read_lines = [](const std::string& file) {
    std::vector<std::string> lines;
    std::ifstream in(file);
    for (std::string text; std::getline(in, text);) {
      if (!text.empty()) {
        lines.push_back(std::move(text));
      }
    }
    return lines;
  };
  std::vector<std::string> lines;
  {
    // Both files are read between rotations; the lines are parsed after.
    const std::lock_guard files(files_mutex_);
    lines = read_lines(options_.path);
    if (lines.size() < count) {
      std::vector<std::string> older = read_lines(rotated(options_.path, 1));
      lines.insert(lines.begin(), older.begin(), older.end());
    }
  }
  const std::size_t skip = lines.size() > count ? lines.size() - count : 0;
  std::vector<json> out;
  for (std::size_t i = skip; i < lines.size(); ++i) {
    json parsed = json::parse(lines[i], nullptr, false);
    if (!parsed.is_discarded()) {
      out.push_back(std::move(parsed));
    }
  }
  return out;
}

} // namespace exai::core
