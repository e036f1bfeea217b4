// exai health: report a running daemon's health for scripts (exit 0/1/2).

#include "cmd/command.hpp"
#include "core/config/config.hpp"
#include "core/log.hpp"

#include <Poco/Exception.h>
#include <Poco/Net/HTTPResponse.h>
#include <nlohmann/json.hpp>

#include <signal.h>
#include <sys/types.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

namespace exai::cmd {

namespace {

constexpr int kHealthy = 0;
constexpr int kDegraded = 1;
constexpr int kUnreachable = 2;

struct HealthOptions {
  std::string url;
  bool json = false;
  std::optional<std::string> file; // set (maybe empty) when --file was given
  double max_age_s = 30;
  double timeout_s = 2;
};

// What we learned, ready to print.
struct Verdict {
  int code = kUnreachable;
  std::string summary;
  nlohmann::json health; // the daemon's document, or null
};

std::string
scope_text(const nlohmann::json& scope)
{
  return std::to_string(scope.value("in_use", 0)) + "/" +
         std::to_string(scope.value("capacity", 0));
}

std::string
describe(const nlohmann::json& h)
{
  std::string text = std::string(h.value("healthy", false) ? "healthy" : "degraded") + ": " +
                     h.value("state", "?") + " on " + h.value("host", "?") + ":" +
                     std::to_string(h.value("port", 0)) + ", pid " +
                     std::to_string(h.value("pid", 0)) + ", up " + h.value("uptime_human", "?") +
                     ", " + std::to_string(h.value("connections", 0)) + " connections, " +
                     std::to_string(h.value("sessions", 0)) + " sessions, " +
                     std::to_string(h.value("inflight_calls", 0)) + " calls in flight";
  // Named copies: iterating items() of a temporary would dangle.
  const nlohmann::json cap = h.value("capacity", nlohmann::json::object());
  const nlohmann::json providers = cap.value("providers", nlohmann::json::object());
  const nlohmann::json circuits = h.value("circuits", nlohmann::json::object());
  const nlohmann::json reasons = h.value("degraded_reasons", nlohmann::json::array());
  if (cap.contains("global")) {
    text += "; global " + scope_text(cap["global"]);
  }
  for (const auto& [id, scope] : providers.items()) {
    text += ", " + id + " " + scope_text(scope);
  }
  for (const auto& [id, state] : circuits.items()) {
    if (state != "closed") {
      text += "; " + id + " circuit " + state.get<std::string>();
    }
  }
  for (const auto& reason : reasons) {
    text += "\n  - " + reason.get<std::string>();
  }
  return text;
}

Verdict
probe_daemon(const HealthOptions& options, const core::DaemonConfig& config)
{
  const std::string url = daemon_base_url(options.url, config);
  Verdict verdict;
  try {
    const DaemonReply reply = daemon_get(url, "/health", config.token, options.timeout_s);
    if (reply.status == Poco::Net::HTTPResponse::HTTP_UNAUTHORIZED) {
      verdict.summary = "unreachable: the daemon at " + url + " refused the token (EXAI_WS_TOKEN)";
      return verdict;
    }
    auto doc = nlohmann::json::parse(reply.body, nullptr, false);
    if (doc.is_discarded() || !doc.is_object()) {
      verdict.summary = "unreachable: " + url + "/health did not answer with a health document";
      return verdict;
    }
    verdict.code = reply.status == Poco::Net::HTTPResponse::HTTP_OK ? kHealthy : kDegraded;
    verdict.summary = describe(doc);
    verdict.health = std::move(doc);
  } catch (const Poco::Exception& e) {
    verdict.summary = "unreachable: no daemon answers at " + url + " (" + e.displayText() + ")";
  }
  return verdict;
}

bool
process_alive(long pid)
{
  return pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM);
}

Verdict
read_file(const HealthOptions& options, const core::DaemonConfig& config)
{
  const std::string path =
      options.file->empty() ? config.state_dir + "/ws_daemon.health.json" : *options.file;
  Verdict verdict;
  std::ifstream in(path);
  if (!in) {
    verdict.summary = "unreachable: no health file at " + path + " (daemon not running?)";
    return verdict;
  }
  std::ostringstream text;
  text << in.rdbuf();
  auto doc = nlohmann::json::parse(text.str(), nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    verdict.summary = "unreachable: " + path + " is not a health document";
    return verdict;
  }
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  const double age = now - doc.value("t", 0.0);
  const long pid = doc.value("pid", 0L);
  verdict.summary = describe(doc);
  if (age > options.max_age_s) {
    // A stale file from a live process is a hung daemon (degraded); from a
    // dead one it is a daemon that is gone (unreachable).
    const bool alive = process_alive(pid);
    verdict.code = alive ? kDegraded : kUnreachable;
    verdict.summary = std::string(alive ? "degraded" : "unreachable") + ": health file " + path +
                      " is " + std::to_string(static_cast<long>(age)) + " s old (max " +
                      std::to_string(static_cast<long>(options.max_age_s)) + " s); pid " +
                      std::to_string(pid) + (alive ? " is alive but not updating it" : " is gone");
  } else {
    verdict.code = doc.value("healthy", false) ? kHealthy : kDegraded;
  }
  verdict.health = std::move(doc);
  return verdict;
}

int
run_health(const HealthOptions& options, const GlobalOptions& global)
{
  const core::DaemonConfig config = core::load_daemon_config(load_settings(global));
  const Verdict verdict = options.file ? read_file(options, config) : probe_daemon(options, config);
  if (options.json) {
    static constexpr const char* kStatus[] = {"healthy", "degraded", "unreachable"};
    const nlohmann::json out = {{"status", kStatus[verdict.code]},
                                {"exit_code", verdict.code},
                                {"summary", verdict.summary},
                                {"health", verdict.health}};
    std::cout << out.dump() << '\n';
  } else {
    std::cout << "exai " << verdict.summary << '\n';
  }
  return verdict.code;
}

} // namespace

Command
add_health(CLI::App& root)
{
  auto options = std::make_shared<HealthOptions>();
  CLI::App* cli = root.add_subcommand("health", "Report a running daemon's health (for scripts)");
  add_daemon_http_options(*cli, options->url, options->timeout_s);
  cli->add_flag("--json", options->json, "Print one JSON object instead of a summary");
  cli->add_option_function<std::string>(
         "--file",
         [options](const std::string& path) { options->file = path; },
         "Read the health file instead of asking the daemon (default path: "
         "$EXAI_STATE_DIR/ws_daemon.health.json)")
      ->expected(0, 1);
  cli->add_option("--max-age", options->max_age_s, "With --file: seconds before the file is stale")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 86400.0));
  return {cli, [options](const GlobalOptions& global) { return run_health(*options, global); }};
}

} // namespace exai::cmd
