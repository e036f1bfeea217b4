#include "core/calls/toolcall_log.hpp"

#include "core/log.hpp"
#include "core/util/text.hpp"

#include <spdlog/fmt/chrono.h>

#include <fcntl.h>
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
  changed_.wait(lock, [&] { return written_total_ >= target; });
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
  json out = fields(record);
  if (options_.content) {
    add_content(out, record);
  }
  return scrub(out.dump(-1, ' ', false, json::error_handler_t::replace), options_.secrets);
}

json
ToolCallLog::fields(const ToolCallRecord& record)
{
  json out = {{"t", iso_time(record.time)},
              {"session", short_id(record.session_id)},
              {"request_id", printable(record.request_id, kMaxIdBytes)},
              {"tool", record.tool},
              {"model", record.model},
              {"provider", record.provider},
              {"duration_ms", record.duration.count()}};
  const ToolResult* result = record.result.get();
  if (result == nullptr) {
    out["outcome"] = "UNKNOWN";
  } else if (const auto* failure = std::get_if<ToolFailure>(result)) {
    out["outcome"] = protocol_code(failure->code);
    if (failure->details.is_object()) {
      // The field and rule name what was wrong without quoting the value.
      for (const char* key : {"field", "rule", "provider", "status", "upstream_code", "scope"}) {
        if (const auto it = failure->details.find(key); it != failure->details.end()) {
          out["error_" + std::string(key)] = *it;
        }
      }
    }
    out["result_bytes"] = failure->message.size();
  } else {
    const auto& success = std::get<ToolSuccess>(*result);
    out["outcome"] = "ok";
    std::size_t bytes = 0;
    for (const auto& text : success.outputs) {
      bytes += text.size();
    }
    out["result_bytes"] = bytes;
    if (!success.outputs.empty()) {
      const json envelope = json::parse(success.outputs.front(), nullptr, false);
      if (envelope.is_object()) {
        out["status"] = envelope.value("status", "");
        if (const auto meta = envelope.find("metadata");
            meta != envelope.end() && meta->is_object()) {
          if (meta->contains("model_used") && (*meta)["model_used"].is_string()) {
            out["model"] = (*meta)["model_used"];
          }
          if (meta->contains("provider_used") && (*meta)["provider_used"].is_string()) {
            out["provider"] = (*meta)["provider_used"];
          }
          if (meta->contains("usage") && (*meta)["usage"].is_object()) {
            out["usage"] = (*meta)["usage"];
          }
        }
      }
    }
  }
  if (record.arguments) {
    const std::string arguments =
        record.arguments->dump(-1, ' ', false, json::error_handler_t::replace);
    out["argument_bytes"] = arguments.size();
  }
  return out;
}

void
ToolCallLog::add_content(json& out, const ToolCallRecord& record)
{
  if (const ToolResult* result = record.result.get()) {
    if (const auto* failure = std::get_if<ToolFailure>(result)) {
      out["error"] = failure->message;
    } else if (const auto& success = std::get<ToolSuccess>(*result); !success.outputs.empty()) {
      out["output"] = printable(success.outputs.front(), kMaxOutputChars);
    }
  }
  if (record.arguments) {
    out["arguments"] = *record.arguments;
  }
}

void
ToolCallLog::add_excerpts(json& out, const ToolCallRecord& record) const
{
  const auto excerpt = [this](const std::string& text) {
    return scrub(printable(text, kRecentExcerptChars), options_.secrets);
  };
  if (record.arguments && record.arguments->is_object()) {
    for (const char* key : {"prompt", "step", "question"}) {
      const auto it = record.arguments->find(key);
      if (it != record.arguments->end() && it->is_string()) {
        out["prompt"] = excerpt(it->get<std::string>());
        break;
      }
    }
  }
  if (const ToolResult* result = record.result.get()) {
    if (const auto* failure = std::get_if<ToolFailure>(result)) {
      out["output"] = excerpt(failure->message);
    } else if (const auto& success = std::get<ToolSuccess>(*result); !success.outputs.empty()) {
      const json envelope = json::parse(success.outputs.front(), nullptr, false);
      out["output"] = excerpt(envelope.is_object() && envelope.contains("content") &&
                                      envelope["content"].is_string()
                                  ? envelope["content"].get<std::string>()
                                  : success.outputs.front());
    }
  }
}

std::vector<json>
ToolCallLog::recent() const
{
  const std::lock_guard lock(mutex_);
  return {recent_.rbegin(), recent_.rend()};
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
  const auto activity = log::get("activity");
  // What leaves memory is freed with the lock released, since calls queue
  // their records under it: the summary recent_ drops (at the next turn) and
  // the record, which may hold the last reference to a large result.
  json evicted;
  std::unique_lock lock(mutex_);
  for (;;) {
    changed_.wait(lock, stop, [this] { return !queue_.empty(); });
    if (queue_.empty()) {
      return; // stopped with nothing left to write
    }
    ToolCallRecord record = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    evicted = nullptr;
    // The line and the in-memory summary share one look at the result.
    json summary = fields(record);
    std::string text;
    if (options_.content) {
      json full = summary;
      add_content(full, record);
      text = scrub(full.dump(-1, ' ', false, json::error_handler_t::replace), options_.secrets);
    } else {
      text = scrub(summary.dump(-1, ' ', false, json::error_handler_t::replace), options_.secrets);
    }
    text.push_back('\n');
    append(text);
    if (options_.recent_content) {
      add_excerpts(summary, record);
    }
    const auto* failure = record.result ? std::get_if<ToolFailure>(record.result.get()) : nullptr;
    activity->info("call tool={} outcome={} duration_ms={} model={} session={} request_id={}",
                   record.tool,
                   failure != nullptr ? protocol_code(failure->code) : "ok",
                   record.duration.count(),
                   record.model.empty() ? "-" : record.model,
                   short_id(record.session_id),
                   printable(record.request_id, 64));
    const std::int64_t minute =
        std::chrono::duration_cast<std::chrono::minutes>(record.time.time_since_epoch()).count();
    const bool error = failure != nullptr || !record.result;
    record = ToolCallRecord{};
    lock.lock();
    if (options_.recent > 0) {
      recent_.push_back(std::move(summary));
      if (recent_.size() > options_.recent) {
        evicted = std::move(recent_.front());
        recent_.pop_front();
      }
    }
    if (minutes_.empty() || minutes_.back().minute < minute) {
      minutes_.push_back(MinuteCount{minute, 0, 0});
      if (minutes_.size() > kMinutesKept) {
        minutes_.pop_front();
      }
    }
    ++minutes_.back().calls;
    minutes_.back().errors += error ? 1 : 0;
    ++written_total_;
    changed_.notify_all();
  }
}

void
ToolCallLog::append(const std::string& text)
{
  if (options_.path.empty()) {
    return;
  }
  if (fd_ >= 0 && size_ > 0 && size_ + text.size() > options_.max_bytes) {
    rotate();
  }
  if (fd_ < 0) {
    fd_ = ::open(options_.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd_ < 0) {
      log::get("core")->warn("tool-call log cannot be opened path={} error=\"{}\"",
                             options_.path,
                             std::strerror(errno));
      return;
    }
    struct stat info {};
    size_ = ::fstat(fd_, &info) == 0 ? static_cast<std::size_t>(info.st_size) : 0;
    if (size_ > 0 && size_ + text.size() > options_.max_bytes) {
      rotate();
      append(text);
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
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
  size_ = 0;
  if (options_.keep <= 0) {
    ::unlink(options_.path.c_str());
    return;
  }
  ::unlink(rotated(options_.path, options_.keep).c_str());
  for (int n = options_.keep - 1; n >= 1; --n) {
    ::rename(rotated(options_.path, n).c_str(), rotated(options_.path, n + 1).c_str());
  }
  ::rename(options_.path.c_str(), rotated(options_.path, 1).c_str());
}

std::vector<json>
ToolCallLog::tail(const std::string& path, std::size_t count)
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
  std::vector<std::string> lines = read_lines(path);
  if (lines.size() < count) {
    std::vector<std::string> older = read_lines(rotated(path, 1));
    lines.insert(lines.begin(), older.begin(), older.end());
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
