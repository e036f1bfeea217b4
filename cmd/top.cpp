// exai top: the operator view in a terminal, like htop. Reads the daemon's
// GET /api/top snapshot (the one the page at / renders) once a second.
// Plain ANSI escapes and termios; no curses.

#include "cmd/command.hpp"
#include "core/config/config.hpp"

#include <Poco/Exception.h>
#include <Poco/Net/HTTPResponse.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <poll.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

namespace exai::cmd {

namespace {

using nlohmann::json;

struct TopOptions {
  std::string url;
  bool once = false;
  bool json = false;
  std::string sort = "elapsed";
  std::string filter;
  double interval_s = 1;
  double timeout_s = 2;
};

// The in-flight table's columns, in order; `key` is the snapshot field.
struct Column {
  const char* name;
  const char* key;
  int width; // 0: the rest of the line
};
constexpr std::array<Column, 6> kColumns = {{{"TOOL", "tool", 22},
                                             {"MODEL", "model", 24},
                                             {"PROVIDER", "provider", 9},
                                             {"SESSION", "session", 10},
                                             {"ELAPSED", "elapsed_ms", 9},
                                             {"STATE", "state", 0}}};

// What the keys change between frames.
struct View {
  std::size_t sort = 4; // index into kColumns
  bool descending = true;
  std::string filter;
  bool editing = false; // typing a filter after '/' or 'f'
};

std::optional<std::size_t>
column_named(const std::string& name)
{
  for (std::size_t i = 0; i < kColumns.size(); ++i) {
    if (name == kColumns[i].key || (name == "elapsed" && i == 4)) {
      return i;
    }
  }
  return std::nullopt;
}

// Terminal columns of UTF-8 `text`: one per character (short ids end in "…").
std::size_t
columns_of(std::string_view text)
{
  return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0U) != 0x80U;
  }));
}

// `text` cut (at a character boundary) or padded to exactly `width` columns.
void
cell(std::string& out, std::string_view text, int width)
{
  if (width <= 0) {
    out.append(text);
    return;
  }
  const auto w = static_cast<std::size_t>(width);
  std::size_t used = columns_of(text);
  if (used >= w) {
    std::size_t end = 0;
    for (std::size_t kept = 0; end < text.size(); ++end) {
      if ((static_cast<unsigned char>(text[end]) & 0xC0U) != 0x80U && ++kept == w) {
        break; // `end` starts character number w: keep w - 1 and a space
      }
    }
    out.append(text.substr(0, end));
    out.push_back(' ');
    return;
  }
  out.append(text);
  out.append(w - used, ' ');
}

void
duration_text(std::string& out, double ms)
{
  if (ms < 1000) {
    fmt::format_to(std::back_inserter(out), "{:.0f}ms", ms);
  } else if (ms < 60000) {
    fmt::format_to(std::back_inserter(out), "{:.1f}s", ms / 1000);
  } else {
    fmt::format_to(std::back_inserter(out),
                   "{}m{:02}s",
                   static_cast<long>(ms / 60000),
                   static_cast<long>(ms / 1000) % 60);
  }
}

std::string
text_of(const json& value)
{
  if (value.is_string()) {
    return value.get<std::string>();
  }
  return value.is_null() ? std::string() : value.dump();
}

void
gauge(std::string& out, const json& scope)
{
  constexpr int kBar = 10;
  const auto capacity = scope.value("capacity", 0L);
  const auto in_use = scope.value("in_use", 0L);
  const auto filled =
      capacity <= 0 ? 0 : static_cast<int>(std::min(in_use, capacity) * kBar / capacity);
  out.append(scope.value("name", "?"));
  out.append(" [");
  out.append(static_cast<std::size_t>(filled), '#');
  out.append(static_cast<std::size_t>(kBar - filled), '.');
  fmt::format_to(
      std::back_inserter(out), "] {}/{} waiting {}", in_use, capacity, scope.value("waiting", 0L));
}

bool
row_matches(const json& call, const std::string& filter)
{
  if (filter.empty()) {
    return true;
  }
  return call.value("tool", "").find(filter) != std::string::npos ||
         call.value("session", "").find(filter) != std::string::npos;
}

// One screen of `snapshot`, at most `height` lines of `width` columns (0:
// unlimited, for --once). Lines end in "\n"; the caller adds the escapes.
std::string
render_frame(const json& snapshot, const View& view, int width, int height)
{
  std::vector<std::string> lines;
  const json daemon = snapshot.value("daemon", json::object());
  {
    std::string line = "exai top - ";
    line.append(daemon.value("healthy", false) ? "healthy" : "degraded");
    fmt::format_to(std::back_inserter(line),
                   " | {} on {}:{} | pid {} | up {} | {} connections | {} sessions | {} mcp",
                   text_of(daemon.value("state", json())),
                   text_of(daemon.value("host", json())),
                   daemon.value("port", 0),
                   daemon.value("pid", 0),
                   text_of(daemon.value("uptime_human", json())),
                   daemon.value("connections", 0),
                   daemon.value("sessions", 0),
                   daemon.value("mcp_sessions", 0));
    lines.push_back(std::move(line));
  }
  for (const auto& reason : daemon.value("degraded_reasons", json::array())) {
    std::string line = "  ! ";
    line.append(text_of(reason));
    lines.push_back(std::move(line));
  }
  {
    std::string line;
    for (const auto& scope : snapshot.value("scopes", json::array())) {
      std::string one;
      gauge(one, scope);
      if (!line.empty() && width > 0 && static_cast<int>(line.size() + one.size() + 3) > width) {
        lines.push_back(std::move(line));
        line.clear();
      }
      if (!line.empty()) {
        line.append(" | ");
      }
      line.append(one);
    }
    lines.push_back(std::move(line));
  }
  {
    std::string line = "providers:";
    for (const auto& provider : snapshot.value("providers", json::array())) {
      fmt::format_to(std::back_inserter(line),
                     " {} {}",
                     text_of(provider.value("id", json())),
                     text_of(provider.value("circuit", json())));
      const json upstream = provider.value("upstream", json::object());
      if (upstream.value("count", 0) > 0) {
        line.append(" p50 ");
        duration_text(line, upstream.value("p50_ms", 0.0));
      }
      line.append(";");
    }
    const json counters = snapshot.value("counters", json::object());
    fmt::format_to(std::back_inserter(line),
                   "  calls: ok {} failed {} timed out {} cancelled {}",
                   counters.value("ok", 0),
                   counters.value("failed", 0),
                   counters.value("timed_out", 0),
                   counters.value("cancelled", 0));
    const json minutes = snapshot.value("per_minute", json::array());
    if (!minutes.empty()) {
      fmt::format_to(std::back_inserter(line),
                     "; this minute {} calls {} errors",
                     minutes.back().value("calls", 0),
                     minutes.back().value("errors", 0));
    }
    lines.push_back(std::move(line));
  }
  {
    const json usage = snapshot.value("usage", json::object());
    const json tokens = usage.value("tokens", json::object());
    std::string line;
    fmt::format_to(std::back_inserter(line),
                   "tokens: prompt {} completion {} cached {}",
                   tokens.value("prompt", 0),
                   tokens.value("completion", 0),
                   tokens.value("cached", 0));
    if (usage.contains("cost")) {
      fmt::format_to(std::back_inserter(line), " cost {:.4f}", usage.value("cost", 0.0));
    }
    lines.push_back(std::move(line));
  }

  // Calls in flight, filtered and sorted.
  std::vector<json> calls;
  for (const auto& call : snapshot.value("inflight", json::array())) {
    if (row_matches(call, view.filter)) {
      calls.push_back(call);
    }
  }
  const Column& by = kColumns[view.sort];
  std::stable_sort(calls.begin(), calls.end(), [&](const json& a, const json& b) {
    const json& x = a.contains(by.key) ? a[by.key] : json();
    const json& y = b.contains(by.key) ? b[by.key] : json();
    return view.descending ? y < x : x < y;
  });
  {
    std::string line;
    fmt::format_to(std::back_inserter(line),
                   "calls in flight: {}",
                   snapshot.value("inflight", json::array()).size());
    if (!view.filter.empty() || view.editing) {
      fmt::format_to(std::back_inserter(line),
                     " (filter \"{}\"{}: {} shown)",
                     view.filter,
                     view.editing ? "_" : "",
                     calls.size());
    }
    lines.emplace_back();
    lines.push_back(std::move(line));
  }
  {
    std::string header;
    for (std::size_t i = 0; i < kColumns.size(); ++i) {
      std::string name = kColumns[i].name;
      if (i == view.sort) {
        name.append(view.descending ? "v" : "^");
      }
      cell(header, name, kColumns[i].width);
    }
    lines.push_back(std::move(header));
  }
  // Room left for the in-flight rows and the recent calls.
  const int fixed = static_cast<int>(lines.size()) + 3; // recent header x2 + help line
  constexpr int kUnlimited = 1 << 20;
  const int room = height > 0 ? std::max(1, height - fixed) : kUnlimited;
  const int recent_room = height > 0 ? std::max(0, std::min(8, room / 3)) : kUnlimited;
  int call_room = height > 0 ? room - recent_room : kUnlimited;
  for (const auto& call : calls) {
    if (call_room-- <= 0) {
      break;
    }
    std::string row;
    cell(row, call.value("tool", ""), kColumns[0].width);
    cell(row, call.value("model", ""), kColumns[1].width);
    cell(row, call.value("provider", ""), kColumns[2].width);
    cell(row, call.value("session", ""), kColumns[3].width);
    std::string elapsed;
    duration_text(elapsed, call.value("elapsed_ms", 0.0));
    cell(row, elapsed, kColumns[4].width);
    row.append(call.value("state", ""));
    if (const std::string waiting = call.value("waiting_for", ""); !waiting.empty()) {
      row.append(" for ");
      row.append(waiting);
    }
    lines.push_back(std::move(row));
    if (call.contains("prompt") && call_room-- > 0) {
      std::string prompt = "  > ";
      prompt.append(text_of(call["prompt"]));
      lines.push_back(std::move(prompt));
    }
  }
  if (calls.empty()) {
    lines.emplace_back("  (none)");
  }

  lines.emplace_back();
  lines.emplace_back("recent calls:");
  int shown = 0;
  for (const auto& recent : snapshot.value("recent", json::array())) {
    if (shown++ >= recent_room) {
      break;
    }
    std::string row = "  ";
    std::string t = recent.value("t", "");
    cell(row, t.size() > 19 ? t.substr(11, 8) : t, 9);
    cell(row, recent.value("tool", ""), 22);
    cell(row, recent.value("model", ""), 24);
    cell(row, recent.value("session", ""), 10);
    cell(row, recent.value("outcome", ""), 18);
    duration_text(row, recent.value("duration_ms", 0.0));
    const json usage = recent.value("usage", json::object());
    if (usage.contains("total_tokens")) {
      fmt::format_to(std::back_inserter(row), " {} tokens", text_of(usage["total_tokens"]));
    }
    lines.push_back(std::move(row));
  }

  std::string out;
  const auto last = height > 0 ? static_cast<std::size_t>(height - 1) : lines.size();
  for (std::size_t i = 0; i < lines.size() && i < last; ++i) {
    if (width > 0 && static_cast<int>(lines[i].size()) > width) {
      lines[i].resize(static_cast<std::size_t>(width));
    }
    out.append(lines[i]);
    out.append("\n");
  }
  if (height > 0) {
    out.append(view.editing ? "filter: type, Enter to keep, Esc to clear"
                            : "q quit  s/> next sort  < previous  r reverse  / or f filter");
  }
  return out;
}

// GET /api/top. On failure, nullopt with `error` set.
std::optional<json>
fetch_snapshot(const std::string& url,
               const std::string& token,
               double timeout_s,
               std::string& error)
{
  try {
    const DaemonReply reply = daemon_get(url, "/api/top", token, timeout_s);
    if (reply.status == Poco::Net::HTTPResponse::HTTP_UNAUTHORIZED) {
      error = "the daemon at " + url + " refused the token (EXAI_WS_TOKEN)";
      return std::nullopt;
    }
    if (reply.status == Poco::Net::HTTPResponse::HTTP_NOT_FOUND) {
      error = "the daemon at " + url + " has no /api/top (EXAI_UI=false, or an older exai)";
      return std::nullopt;
    }
    json doc = json::parse(reply.body, nullptr, false);
    if (doc.is_discarded() || !doc.is_object() || !doc.contains("inflight")) {
      error = url + "/api/top did not answer with a snapshot";
      return std::nullopt;
    }
    return doc;
  } catch (const Poco::Exception& e) {
    error = "no daemon answers at " + url + " (" + e.displayText() + ")";
  }
  return std::nullopt;
}

// Raw keys, no echo, alternate screen; restored on destruction.
class Terminal {
public:
  Terminal()
  {
    if (::tcgetattr(STDIN_FILENO, &saved_) == 0) {
      termios raw = saved_;
      raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
      raw.c_cc[VMIN] = 0;
      raw.c_cc[VTIME] = 0;
      active_ = ::tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
    }
    write("\x1b[?1049h\x1b[?25l");
  }
  ~Terminal()
  {
    write("\x1b[?25h\x1b[?1049l");
    if (active_) {
      ::tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
    }
  }
  Terminal(const Terminal&) = delete;
  Terminal& operator=(const Terminal&) = delete;

  static void write(std::string_view text)
  {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
  }
  static std::pair<int, int> size()
  {
    winsize ws{};
    if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
      return {ws.ws_col, ws.ws_row};
    }
    return {80, 24};
  }

private:
  termios saved_{};
  bool active_ = false;
};

// Applies one key to `view`; false when it quits.
bool
on_key(View& view, char key)
{
  if (view.editing) {
    if (key == '\n' || key == '\r') {
      view.editing = false;
    } else if (key == 0x1b) {
      view.editing = false;
      view.filter.clear();
    } else if (key == 0x7f || key == '\b') {
      if (!view.filter.empty()) {
        view.filter.pop_back();
      }
    } else if (key >= 0x20 && key < 0x7f) {
      view.filter.push_back(key);
    }
    return true;
  }
  switch (key) {
  case 'q':
  case 'Q':
  case 0x03: // Ctrl-C (ISIG stays on; this is for completeness)
    return false;
  case 's':
  case '>':
    view.sort = (view.sort + 1) % kColumns.size();
    break;
  case '<':
    view.sort = (view.sort + kColumns.size() - 1) % kColumns.size();
    break;
  case 'r':
    view.descending = !view.descending;
    break;
  case '/':
  case 'f':
    view.editing = true;
    break;
  default:
    break;
  }
  return true;
}

int
run_top(const TopOptions& options, const GlobalOptions& global)
{
  const core::DaemonConfig config = core::load_daemon_config(load_settings(global));
  const std::string url = daemon_base_url(options.url, config);
  View view;
  if (const auto column = column_named(options.sort)) {
    view.sort = *column;
    view.descending = options.sort == "elapsed" || options.sort == "elapsed_ms";
  }
  view.filter = options.filter;

  std::string error;
  const bool interactive =
      !options.once && !options.json && ::isatty(STDIN_FILENO) != 0 && ::isatty(STDOUT_FILENO) != 0;
  if (!interactive) {
    const auto snapshot = fetch_snapshot(url, config.token, options.timeout_s, error);
    if (!snapshot) {
      std::cerr << "exai top: " << error << '\n';
      return kExitUnavailable;
    }
    std::cout << (options.json ? snapshot->dump() + "\n" : render_frame(*snapshot, view, 0, 0));
    return kExitOk;
  }

  const Terminal terminal;
  std::optional<json> snapshot;
  auto next = std::chrono::steady_clock::now();
  for (;;) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= next) {
      if (auto fresh = fetch_snapshot(url, config.token, options.timeout_s, error)) {
        snapshot = std::move(fresh);
        error.clear();
      }
      next = now + std::chrono::milliseconds(static_cast<long>(options.interval_s * 1000));
    }
    const auto [width, height] = Terminal::size();
    // Home, then each line cleared to its end, then the rest of the screen:
    // no flicker from clearing the whole screen first.
    std::string frame = "\x1b[H";
    if (snapshot) {
      std::string body = render_frame(*snapshot, view, width, height - (error.empty() ? 0 : 1));
      // Clear to the end of each line so a shorter line leaves nothing behind.
      for (char c : body) {
        if (c == '\n') {
          frame.append("\x1b[K\r\n");
        } else {
          frame.push_back(c);
        }
      }
    }
    if (!error.empty()) {
      frame.append("\r\nexai top: ");
      frame.append(error);
      frame.append(" (retrying; q quits)");
    }
    frame.append("\x1b[K\x1b[J");
    Terminal::write(frame);

    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
        next - std::chrono::steady_clock::now());
    pollfd input{STDIN_FILENO, POLLIN, 0};
    if (::poll(&input, 1, static_cast<int>(std::max<long>(0, wait.count()))) > 0) {
      std::array<char, 64> keys{};
      const ssize_t n = ::read(STDIN_FILENO, keys.data(), keys.size());
      if (n == 0) {
        return kExitOk; // stdin closed
      }
      for (ssize_t i = 0; i < n; ++i) {
        if (!on_key(view, keys[static_cast<std::size_t>(i)])) {
          return kExitOk;
        }
      }
    }
  }
}

} // namespace

Command
add_top(CLI::App& root)
{
  auto options = std::make_shared<TopOptions>();
  CLI::App* cli = root.add_subcommand(
      "top", "Watch a running daemon's calls and capacity, like htop (q quits)");
  add_daemon_http_options(*cli, options->url, options->timeout_s);
  cli->add_flag("--once", options->once, "Print one frame and exit (for scripts)");
  cli->add_flag("--json", options->json, "Print the daemon's snapshot (GET /api/top) and exit");
  cli->add_option("--sort",
                  options->sort,
                  "Sort calls in flight by tool|model|provider|session|elapsed|state")
      ->capture_default_str()
      ->check(CLI::IsMember({"tool", "model", "provider", "session", "elapsed", "state"}));
  cli->add_option("--filter", options->filter, "Show calls whose tool or session contains this");
  cli->add_option("--interval", options->interval_s, "Seconds between refreshes")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 60.0));
  return {cli, [options](const GlobalOptions& global) { return run_top(*options, global); }};
}

} // namespace exai::cmd
