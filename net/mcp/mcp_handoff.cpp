#include "net/mcp/mcp_handoff.hpp"

#include "core/health/state_dir.hpp"

#include <filesystem>
#include <fstream>
#include <system_error>

namespace exai::net {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

bool
safe_key(const std::string& key)
{
  // "<hex>.<digits>": nothing that could leave the directory.
  return !key.empty() && key.size() <= 64 &&
         key.find_first_not_of("0123456789abcdef.") == std::string::npos &&
         key.find("..") == std::string::npos;
}

bool
expired(const fs::path& path, std::chrono::milliseconds ttl)
{
  std::error_code ec;
  const auto written = fs::last_write_time(path, ec);
  return ec || fs::file_time_type::clock::now() - written > ttl;
}

} // namespace

McpHandoffStore::McpHandoffStore(const std::string& state_dir, std::chrono::milliseconds ttl)
    : dir_(state_dir.empty() ? std::string() : state_dir + "/mcp-handoff")
    , ttl_(ttl)
{
}

std::string
McpHandoffStore::path_of(const std::string& stream_key) const
{
  return dir_ + "/" + stream_key + ".json";
}

bool
McpHandoffStore::put(const McpHandoff& call) const noexcept
{
  if (!enabled() || !safe_key(call.stream_key)) {
    return false;
  }
  try {
    if (fs::create_directories(dir_)) {
      fs::permissions(dir_, fs::perms::owner_all);
    }
    const json record = {{"session", call.session_id},
                         {"id", call.id},
                         {"progress_token", call.progress_token},
                         {"tool", call.tool},
                         {"arguments", call.arguments}};
    core::write_file_atomically(path_of(call.stream_key), record.dump());
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

std::optional<McpHandoff>
McpHandoffStore::take(const std::string& stream_key, const std::string& session_id) const noexcept
{
  if (!enabled() || !safe_key(stream_key)) {
    return std::nullopt;
  }
  try {
    const fs::path path = path_of(stream_key);
    if (!fs::exists(path)) {
      return std::nullopt;
    }
    if (expired(path, ttl_)) {
      fs::remove(path);
      return std::nullopt;
    }
    std::ifstream in(path);
    const json record = json::parse(in, nullptr, false);
    in.close();
    if (!record.is_object() || record.value("session", std::string()) != session_id) {
      return std::nullopt; // another session's: left for it (or for expiry)
    }
    fs::remove(path); // taken once
    return McpHandoff{session_id,
                      stream_key,
                      record.value("id", json()),
                      record.value("progress_token", json()),
                      record.value("tool", std::string()),
                      record.value("arguments", json::object())};
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

void
McpHandoffStore::sweep() const noexcept
{
  if (!enabled()) {
    return;
  }
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    if (expired(entry.path(), ttl_)) {
      fs::remove(entry.path(), ec);
    }
  }
}

} // namespace exai::net
