#include "core/config/config.hpp"

#include "core/error.hpp"
#include "core/providers/model_catalog.hpp"
#include "core/util/text.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <sstream>

namespace exai::core {

namespace {

[[noreturn]] void
out_of_range(std::string_view name, std::string_view value, const std::string& range)
{
  throw Error(Errc::config_invalid,
              "invalid " + std::string(name) + "='" + std::string(value) + "': expected " + range);
}

std::string
trimmed(std::string_view text)
{
  return std::string(trim(text));
}

std::string
default_state_dir(const Settings& settings)
{
  if (auto dir = settings.get_nonempty("EXAI_STATE_DIR")) {
    return *dir;
  }
  if (auto xdg = settings.get_nonempty("XDG_STATE_HOME")) {
    return *xdg + "/exai";
  }
  if (auto home = settings.get_nonempty("HOME")) {
    return *home + "/.local/state/exai";
  }
  return "/tmp/exai-state";
}

// EXAI_FILE_ROOTS: absolute directories separated by ':'; default $HOME.
std::vector<std::string>
read_file_roots(const Settings& settings)
{
  const auto value = settings.get_nonempty("EXAI_FILE_ROOTS");
  if (!value) {
    const auto home = settings.get_nonempty("HOME");
    return home ? std::vector<std::string>{*home} : std::vector<std::string>{};
  }
  std::vector<std::string> roots;
  std::size_t start = 0;
  while (start <= value->size()) {
    const std::size_t end = std::min(value->find(':', start), value->size());
    const std::string root(trim(std::string_view(*value).substr(start, end - start)));
    start = end + 1;
    if (root.empty()) {
      continue;
    }
    if (root.front() != '/') {
      throw Error(Errc::config_invalid,
                  "EXAI_FILE_ROOTS=" + *value + " is invalid: '" + root +
                      "' is not an absolute path");
    }
    roots.push_back(root);
  }
  return roots;
}

// EXAI_PRICES, keyed by canonical model name (aliases resolved): a name the
// catalog does not know is a typo that would price nothing.
PriceTable
read_prices(const Settings& settings)
{
  PriceTable table;
  for (auto& [name, price] : parse_price_table(settings.get("EXAI_PRICES").value_or(""))) {
    const ModelInfo* model = ModelCatalog::builtin().find(name);
    if (model == nullptr) {
      throw Error(Errc::config_invalid,
                  "invalid EXAI_PRICES entry for '" + name +
                      "': not a known model (see exai "
                      "detect-providers or the listmodels tool)");
    }
    if (!table.emplace(model->name, price).second) {
      throw Error(Errc::config_invalid,
                  "invalid EXAI_PRICES: model '" + model->name + "' is priced twice (as '" + name +
                      "' and an alias)");
    }
  }
  return table;
}

} // namespace

bool
read_bool(const Settings& settings, std::string_view name, bool fallback)
{
  const auto value = settings.get_nonempty(name);
  if (!value) {
    return fallback;
  }
  const std::string lower = to_lower_ascii(trim(*value));
  if (lower == "true" || lower == "1" || lower == "yes" || lower == "on") {
    return true;
  }
  if (lower == "false" || lower == "0" || lower == "no" || lower == "off") {
    return false;
  }
  out_of_range(name, *value, "true or false (also 1/0, yes/no, on/off)");
}

std::int64_t
read_int(const Settings& settings,
         std::string_view name,
         std::int64_t fallback,
         std::int64_t min,
         std::int64_t max)
{
  const auto raw = settings.get(name);
  const std::string range = "an integer from " + std::to_string(min) + " to " + std::to_string(max);
  if (!raw || trimmed(*raw).empty()) {
    return fallback;
  }
  const std::string text = trimmed(*raw);
  std::int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < min || value > max) {
    out_of_range(name, *raw, range);
  }
  return value;
}

Millis
read_seconds(
    const Settings& settings, std::string_view name, Millis fallback, double min_s, double max_s)
{
  const auto raw = settings.get(name);
  if (!raw || trimmed(*raw).empty()) {
    return fallback;
  }
  const std::string text = trimmed(*raw);
  const auto number = [](double v) {
    std::ostringstream out;
    out << v; // shortest form: 0.05, 3600
    return out.str();
  };
  const std::string range = "seconds from " + number(min_s) + " to " + number(max_s);
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || !std::isfinite(value) || value < min_s ||
      value > max_s) {
    out_of_range(name, *raw, range);
  }
  return Millis(static_cast<std::int64_t>(std::llround(value * 1000.0)));
}

std::vector<std::string>
split_list(std::string_view text)
{
  std::vector<std::string> items;
  while (!text.empty()) {
    const auto comma = text.find(',');
    std::string item = trimmed(text.substr(0, comma));
    if (!item.empty()) {
      items.push_back(std::move(item));
    }
    text.remove_prefix(comma == std::string_view::npos ? text.size() : comma + 1);
  }
  return items;
}

DaemonConfig
load_daemon_config(const Settings& settings)
{
  DaemonConfig c;
  constexpr double kDay = 86400.0;
  constexpr std::int64_t kMaxCount = 1000000;
  const auto bytes = [&](std::string_view name,
                         std::size_t fallback,
                         std::int64_t min = 0,
                         std::int64_t max = std::int64_t{1} << 40) {
    return static_cast<std::size_t>(
        read_int(settings, name, static_cast<std::int64_t>(fallback), min, max));
  };
  c.host = settings.get_nonempty("EXAI_WS_HOST").value_or(c.host);
  c.port = static_cast<std::uint16_t>(read_int(settings, "EXAI_WS_PORT", c.port, 0, 65535));
  c.token = settings.get("EXAI_WS_TOKEN").value_or("");
  if (!c.token.empty() && c.token.size() < 16) {
    throw Error(Errc::config_invalid,
                "invalid EXAI_WS_TOKEN (" + std::to_string(c.token.size()) +
                    " characters): expected at least 16 characters, or empty for no auth");
  }
  c.max_bytes = bytes("EXAI_WS_MAX_BYTES", c.max_bytes, 1024, std::int64_t{1} << 30);
  c.hello_timeout = read_seconds(settings, "EXAI_WS_HELLO_TIMEOUT", c.hello_timeout, 0.05, 3600);
  c.ping_interval = read_seconds(settings, "EXAI_WS_PING_INTERVAL", c.ping_interval, 0.05, kDay);
  c.ping_timeout = read_seconds(settings, "EXAI_WS_PING_TIMEOUT", c.ping_timeout, 0.05, kDay);
  c.progress_interval =
      read_seconds(settings, "EXAI_WS_PROGRESS_INTERVAL_SECS", c.progress_interval, 0.05, 3600);
  const auto count = [&](std::string_view name, std::size_t fallback, std::int64_t min) {
    return static_cast<std::size_t>(
        read_int(settings, name, static_cast<std::int64_t>(fallback), min, kMaxCount));
  };
  c.global_max_inflight = count("EXAI_WS_GLOBAL_MAX_INFLIGHT", c.global_max_inflight, 1);
  c.kimi_max_inflight = count("EXAI_WS_KIMI_MAX_INFLIGHT", c.kimi_max_inflight, 1);
  c.glm_max_inflight = count("EXAI_WS_GLM_MAX_INFLIGHT", c.glm_max_inflight, 1);
  c.session_max_inflight = count("EXAI_WS_SESSION_MAX_INFLIGHT", c.session_max_inflight, 1);
  c.conversation_max_inflight =
      count("EXAI_WS_CONVERSATION_MAX_INFLIGHT", c.conversation_max_inflight, 1);
  c.acquire_timeout =
      read_seconds(settings, "EXAI_WS_ACQUIRE_TIMEOUT_SECS", c.acquire_timeout, 0, 3600);
  c.call_timeout = read_seconds(settings, "EXAI_WS_CALL_TIMEOUT_SECS", c.call_timeout, 0.05, kDay);
  c.result_ttl = read_seconds(settings, "EXAI_WS_RESULT_TTL", c.result_ttl, 0, kDay);
  c.result_cache_max = count("EXAI_WS_RESULT_CACHE_MAX", c.result_cache_max, 1);
  for (auto& tool : split_list(settings.get("EXAI_WS_DISABLE_COALESCE_FOR_TOOLS").value_or(""))) {
    c.disable_coalesce_tools.insert(std::move(tool));
  }
  if (const auto scope = settings.get_nonempty("EXAI_WS_REUSE_SCOPE")) {
    if (*scope == "session") {
      c.reuse_scope = ReuseScope::session;
    } else if (*scope == "token") {
      c.reuse_scope = ReuseScope::token;
    } else if (*scope == "global") {
      c.reuse_scope = ReuseScope::global;
    } else {
      throw Error(Errc::config_invalid,
                  "invalid EXAI_WS_REUSE_SCOPE='" + *scope +
                      "': expected session, token or global");
    }
  }
  c.result_max_bytes = bytes("EXAI_WS_RESULT_MAX_BYTES", c.result_max_bytes);
  c.reuse_max_bytes = bytes("EXAI_WS_REUSE_MAX_BYTES", c.reuse_max_bytes);
  c.conversation_max_bytes = bytes("EXAI_CONVERSATION_MAX_BYTES", c.conversation_max_bytes);
  c.session_max_queued = count("EXAI_WS_SESSION_MAX_QUEUED", c.session_max_queued, 0);
  c.max_connections = count("MAX_CONNECTIONS", c.max_connections, 1);
  c.max_connections_per_ip = count("MAX_CONNECTIONS_PER_IP", c.max_connections_per_ip, 1);
  c.max_pending = count("EXAI_WS_MAX_PENDING", c.max_pending, 1);
  c.pending_max_bytes =
      bytes("EXAI_WS_PENDING_MAX_BYTES", c.pending_max_bytes, 4096, std::int64_t{1} << 24);
  c.http_bodies_max_bytes = bytes("EXAI_HTTP_BODIES_MAX_BYTES",
                                  c.max_bytes * 4,
                                  static_cast<std::int64_t>(c.max_bytes),
                                  std::int64_t{1} << 36);
  c.http_request_timeout =
      read_seconds(settings, "EXAI_HTTP_REQUEST_TIMEOUT_SECS", c.http_request_timeout, 0.05, 3600);
  c.http_keepalive = read_seconds(settings, "EXAI_HTTP_KEEPALIVE_SECS", c.http_keepalive, 0, 3600);
  c.http_threads = static_cast<std::size_t>(read_int(settings, "EXAI_HTTP_THREADS", 4, 1, 64));
  c.send_queue_bytes =
      bytes("EXAI_WS_SEND_QUEUE_BYTES", c.send_queue_bytes, 65536, std::int64_t{1} << 32);
  c.slow_client_timeout =
      read_seconds(settings, "EXAI_WS_SLOW_CLIENT_SECS", c.slow_client_timeout, 0.05, 3600);
  c.session_timeout = read_seconds(settings, "SESSION_TIMEOUT_SECS", c.session_timeout, 1, kDay);
  c.shutdown_grace = read_seconds(settings, "EXAI_SHUTDOWN_GRACE_SECS", c.shutdown_grace, 0, 3600);
  c.health_interval =
      read_seconds(settings, "EXAI_HEALTH_WRITER_INTERVAL", c.health_interval, 0.05, 3600);
  c.worker_threads = count("EXAI_WORKER_THREADS", c.worker_threads, 1);
  if (c.worker_threads > 256) {
    throw Error(Errc::config_invalid,
                "invalid EXAI_WORKER_THREADS='" + std::to_string(c.worker_threads) +
                    "': expected an integer from 1 to 256");
  }
  c.busy_poll = std::chrono::microseconds(
      read_int(settings, "EXAI_WS_BUSY_POLL_US", c.busy_poll.count(), 0, 10000));
  c.call_threads = static_cast<std::size_t>(read_int(settings, "EXAI_CALL_THREADS", 256, 1, 4096));
  c.max_queued = count("EXAI_WS_MAX_QUEUED", c.max_queued, 0);
  c.conversation_ttl =
      read_seconds(settings, "EXAI_CONVERSATION_TTL_SECS", c.conversation_ttl, 1, 30 * kDay);
  c.conversation_max = count("EXAI_CONVERSATION_MAX", c.conversation_max, 1);
  c.conversation_max_turns = static_cast<int>(
      read_int(settings, "EXAI_CONVERSATION_MAX_TURNS", c.conversation_max_turns, 1, 1000));
  c.state_dir = default_state_dir(settings);
  c.allowed_origins = split_list(settings.get("EXAI_ALLOWED_ORIGINS").value_or(""));
  c.file_roots = read_file_roots(settings);
  c.file_max_bytes = bytes("EXAI_FILE_MAX_BYTES", c.file_max_bytes, 1, 1LL << 30);
  c.image_max_bytes = bytes("EXAI_IMAGE_MAX_BYTES", c.image_max_bytes, 1, 1LL << 30);
  c.upstream_idle = read_seconds(settings, "EXAI_UPSTREAM_IDLE_SECS", c.upstream_idle, 0, 3600);
  c.upstream_stream = read_bool(settings, "EXAI_UPSTREAM_STREAM", c.upstream_stream);
  c.upstream_stall =
      read_seconds(settings, "EXAI_UPSTREAM_STALL_SECS", c.upstream_stall, 0.05, 3600);
  c.upstream_on_loops = read_bool(settings, "EXAI_UPSTREAM_ON_LOOPS", c.upstream_on_loops);
  c.prices = read_prices(settings);
  const auto lower_names = [&](std::string_view name) {
    std::vector<std::string> names = split_list(settings.get(name).value_or(""));
    for (auto& item : names) {
      std::transform(item.begin(), item.end(), item.begin(), [](unsigned char ch) {
        return static_cast<char>(std::tolower(ch));
      });
    }
    return names;
  };
  for (auto& tool : lower_names("DISABLED_TOOLS")) {
    c.disabled_tools.insert(std::move(tool));
  }
  c.lean_mode = read_bool(settings, "LEAN_MODE", c.lean_mode);
  c.lean_tools = lower_names("LEAN_TOOLS");
  c.strict_lean = read_bool(settings, "STRICT_LEAN", c.strict_lean);
  c.diagnostics = read_bool(settings, "DIAGNOSTICS", c.diagnostics);
  c.toolcall_log_max_bytes =
      bytes("EXAI_TOOLCALL_LOG_MAX_BYTES", c.toolcall_log_max_bytes, 4096, std::int64_t{1} << 34);
  c.toolcall_log_keep =
      static_cast<int>(read_int(settings, "EXAI_TOOLCALL_LOG_KEEP", c.toolcall_log_keep, 0, 100));
  c.toolcall_log_content = read_bool(settings, "EXAI_TOOLCALL_LOG_CONTENT", false);
  c.ui = read_bool(settings, "EXAI_UI", true);
  c.ui_show_content = read_bool(settings, "EXAI_UI_SHOW_CONTENT", false);
  c.upload_max_bytes =
      bytes("EXAI_UPLOAD_MAX_BYTES", c.upload_max_bytes, 1, std::int64_t{512} << 20U);
  if (const auto url = settings.get_nonempty("EXAI_REDIS_URL")) {
    std::string why;
    c.redis = parse_redis_url(*url, why);
    if (!c.redis) {
      throw Error(Errc::config_invalid, "invalid EXAI_REDIS_URL: " + why);
    }
  }
  if (const auto mode = settings.get_nonempty("EXAI_REDIS_FAILURE")) {
    if (*mode == "local") {
      c.redis_failure = SharedFailureMode::local;
    } else if (*mode == "refuse") {
      c.redis_failure = SharedFailureMode::refuse;
    } else {
      throw Error(Errc::config_invalid,
                  "invalid EXAI_REDIS_FAILURE '" + *mode + "': expected local or refuse");
    }
  }
  if (const auto share = settings.get_nonempty("EXAI_REDIS_LOCAL_SHARE")) {
    char* end = nullptr;
    const double value = std::strtod(share->c_str(), &end);
    if (end != share->c_str() + share->size() || !std::isfinite(value) || value <= 0 || value > 1) {
      throw Error(Errc::config_invalid,
                  "invalid EXAI_REDIS_LOCAL_SHARE '" + *share +
                      "': expected a fraction above 0 and at most 1");
    }
    c.redis_local_share = value;
  }
  c.redis_lease_ttl =
      read_seconds(settings, "EXAI_REDIS_LEASE_TTL_SECS", c.redis_lease_ttl, 0.3, 3600);
  c.redis_timeout = read_seconds(settings, "EXAI_REDIS_TIMEOUT_SECS", c.redis_timeout, 0.01, 60);
  c.redis_prefix = settings.get_nonempty("EXAI_REDIS_PREFIX").value_or(c.redis_prefix);
  c.redis_write_queue_max_bytes = bytes("EXAI_REDIS_WRITE_QUEUE_MAX_BYTES",
                                        c.redis_write_queue_max_bytes,
                                        4096,
                                        std::int64_t{1} << 34);
  return c;
}

} // namespace exai::core
