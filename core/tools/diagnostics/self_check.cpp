// self-check: is this daemon set up to work? Configuration, state
// directory, providers (one cheap authenticated request each), file roots
// and tools. Listed only with DIAGNOSTICS=true.

#include "core/config/config.hpp"
#include "core/providers/provider_http.hpp"
#include "core/tools/builtin.hpp"
#include "core/tools/daemon_view.hpp"
#include "core/tools/tool_registry.hpp"
#include "core/tools/tool_visibility.hpp"

#include <sys/stat.h>
#include <unistd.h>

namespace exai::core::tools {

namespace {

constexpr auto kProbeTimeout = std::chrono::seconds(5);

nlohmann::json
check(std::string name, bool ok, std::string detail)
{
  return {{"check", std::move(name)}, {"ok", ok}, {"detail", std::move(detail)}};
}

nlohmann::json
directory_check(const std::string& what, const std::string& path, int access_mode)
{
  struct stat info {};
  if (path.empty()) {
    return check(what, false, "not set");
  }
  if (::stat(path.c_str(), &info) != 0) {
    return check(what, false, path + " does not exist");
  }
  if (!S_ISDIR(info.st_mode)) {
    return check(what, false, path + " is not a directory");
  }
  if (::access(path.c_str(), access_mode) != 0) {
    return check(
        what, false, path + ((access_mode & W_OK) != 0 ? " is not writable" : " is not readable"));
  }
  return check(what, true, path);
}

nlohmann::json
probe(ToolContext& context, const ProviderConfig& provider)
{
  const std::string what = "provider " + provider.id;
  if (!provider.available()) {
    return check(what,
                 true,
                 "not configured" +
                     (provider.disabled_reason.empty() ? "" : ": " + provider.disabled_reason));
  }
  if (context.http == nullptr) {
    return check(what, true, "configured; not probed (no HTTP client)");
  }
  ProviderHttpRequest request;
  request.method = "GET";
  request.path = "/models";
  request.deadline = std::min(context.deadline, std::chrono::steady_clock::now() + kProbeTimeout);
  const auto outcome = context.http->send(provider.id, request, context.stop);
  if (const auto* reply = std::get_if<ProviderHttpReply>(&outcome)) {
    return check(what,
                 true,
                 "reachable at " + provider.base_url + " (HTTP " + std::to_string(reply->status) +
                     ", " + std::to_string(reply->latency.count()) + " ms)");
  }
  const auto& failure = std::get<ChatFailure>(outcome);
  return check(what, false, provider.base_url + ": " + failure.message);
}

ToolSpec
self_check_spec()
{
  ToolSpec s;
  s.name = "self-check";
  s.title = "Self-check";
  s.description =
      "Check that this daemon is set up to work: configuration, state directory, each "
      "configured provider (one cheap authenticated request, 5 s at most), file roots and "
      "the tools it lists. Keys are reported by presence only.";
  return s;
}

nlohmann::json
self_check_report(ToolContext& context)
{
  const auto& config = context.config;
  nlohmann::json checks = nlohmann::json::array();
  checks.push_back(check("configuration",
                         true,
                         "listening on " + config.host + ":" + std::to_string(config.port) +
                             ", auth " + (config.token.empty() ? "off" : "on") + ", call timeout " +
                             std::to_string(config.call_timeout.count() / 1000) + " s"));
  checks.push_back(directory_check("state directory", config.state_dir, W_OK));
  for (const auto& provider : context.providers.providers()) {
    checks.push_back(probe(context, provider));
  }
  if (!context.providers.any_configured()) {
    checks.push_back(check("providers", false, "none configured: set KIMI_API_KEY or GLM_API_KEY"));
  }
  if (config.file_roots.empty()) {
    checks.push_back(check("file roots", false, "none: set EXAI_FILE_ROOTS"));
  }
  for (const auto& root : config.file_roots) {
    checks.push_back(directory_check("file root", root, R_OK | X_OK));
  }
  if (context.daemon != nullptr) {
    std::size_t visible = 0;
    for (const Tool* tool : context.daemon->tools.all()) {
      visible += context.daemon->visibility.visible(tool->name()) ? 1 : 0;
    }
    checks.push_back(check("tools",
                           visible > 0,
                           std::to_string(visible) + " of " +
                               std::to_string(context.daemon->tools.size()) + " listed"));
  }
  bool ok = true;
  for (const auto& item : checks) {
    ok = ok && item["ok"].get<bool>();
  }
  return {{"ok", ok}, {"checks", checks}};
}

} // namespace

std::unique_ptr<Tool>
make_self_check()
{
  return make_report_tool(self_check_spec(), Reuse::no, self_check_report);
}

} // namespace exai::core::tools
