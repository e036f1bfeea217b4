#include "cmd/command.hpp"
#include "core/config/env_file.hpp"
#include "core/error.hpp"
#include "core/log.hpp"

#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/URI.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>

extern char** environ; // NOLINT(readability-redundant-declaration): POSIX

namespace exai::cmd {

core::Settings
load_settings(const GlobalOptions& global, core::Settings::Map flags)
{
  core::Settings::Map environment;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    if (const auto eq = text.find('='); eq != std::string_view::npos) {
      environment.emplace(std::string(text.substr(0, eq)), std::string(text.substr(eq + 1)));
    }
  }
  std::string path = global.env_file;
  if (path.empty()) {
    if (const auto it = environment.find("ENV_FILE"); it != environment.end()) {
      path = it->second;
    } else if (std::filesystem::exists(".env")) {
      path = ".env";
    }
  }
  core::Settings::Map file_values;
  if (!path.empty()) {
    file_values = core::read_env_file(path);
  }
  return core::Settings(std::move(flags), std::move(environment), std::move(file_values));
}

core::Settings::Map
endpoint_flags(const std::string& host, int port)
{
  core::Settings::Map flags;
  if (!host.empty()) {
    flags["EXAI_WS_HOST"] = host;
  }
  if (port >= 0) {
    flags["EXAI_WS_PORT"] = std::to_string(port);
  }
  return flags;
}

int
run_guarded(const Command& command, const GlobalOptions& global)
{
  const auto log = core::log::get("cmd");
  try {
    return command.run(global);
  } catch (const core::Error& e) {
    log->error("{} failed code={} error=\"{}\"",
               command.cli->get_name(),
               static_cast<int>(e.code()),
               e.what());
    switch (e.code()) {
    case core::Errc::config_invalid:
      return kExitConfig;
    case core::Errc::provider_unavailable:
    case core::Errc::upstream_failed:
    case core::Errc::already_running:
      return kExitUnavailable;
    default:
      return kExitFailure;
    }
  } catch (const std::exception& e) {
    log->critical("{} crashed error=\"{}\"", command.cli->get_name(), e.what());
    return kExitSoftware;
  }
}

void
add_daemon_http_options(CLI::App& cli, std::string& url, double& timeout_s)
{
  cli.add_option("--url", url, "Daemon base URL (default: http://EXAI_WS_HOST:EXAI_WS_PORT)");
  cli.add_option("--timeout", timeout_s, "Seconds to wait for the daemon")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 600.0));
}

std::string
daemon_base_url(const std::string& url, const core::DaemonConfig& config)
{
  if (!url.empty()) {
    return url;
  }
  std::string base = "http://";
  base.append(config.host).append(":").append(std::to_string(config.port));
  return base;
}

DaemonReply
daemon_get(const std::string& base_url,
           const std::string& path,
           const std::string& token,
           double timeout_s)
{
  const Poco::URI uri(base_url);
  Poco::Net::HTTPClientSession session(uri.getHost(), uri.getPort());
  session.setTimeout(Poco::Timespan(static_cast<long>(timeout_s * 1e6)));
  Poco::Net::HTTPRequest request(
      Poco::Net::HTTPRequest::HTTP_GET, path, Poco::Net::HTTPMessage::HTTP_1_1);
  if (!token.empty()) {
    request.set("Authorization", "Bearer " + token);
  }
  session.sendRequest(request);
  Poco::Net::HTTPResponse response;
  std::istream& body = session.receiveResponse(response);
  std::ostringstream text;
  text << body.rdbuf();
  return {static_cast<int>(response.getStatus()), text.str()};
}

} // namespace exai::cmd
