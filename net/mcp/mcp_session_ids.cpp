#include "net/mcp/mcp_session_ids.hpp"

#include "core/error.hpp"
#include "core/health/state_dir.hpp"
#include "core/util/random_id.hpp"

#include <Poco/Base64Decoder.h>
#include <Poco/Base64Encoder.h>
#include <Poco/DigestEngine.h>
#include <Poco/HMACEngine.h>
#include <Poco/SHA2Engine.h>
#include <nlohmann/json.hpp>

#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

namespace exai::net {

namespace {

// HMACEngine needs the block and digest sizes as members.
class Sha256Engine : public Poco::SHA2Engine {
public:
  enum { BLOCK_SIZE = 64, DIGEST_SIZE = 32 };
  Sha256Engine()
      : Poco::SHA2Engine(Poco::SHA2Engine::SHA_256)
  {
  }
};

constexpr std::size_t kSecretHexChars = 64;

std::string
base64url(std::string_view bytes)
{
  std::ostringstream out;
  Poco::Base64Encoder encoder(out, Poco::BASE64_URL_ENCODING | Poco::BASE64_NO_PADDING);
  encoder.rdbuf()->setLineLength(0);
  encoder << bytes;
  encoder.close();
  return out.str();
}

std::optional<std::string>
from_base64url(std::string_view text)
{
  try {
    std::istringstream in{std::string(text)};
    Poco::Base64Decoder decoder(in, Poco::BASE64_URL_ENCODING | Poco::BASE64_NO_PADDING);
    std::string bytes((std::istreambuf_iterator<char>(decoder)), std::istreambuf_iterator<char>());
    return bytes;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

[[noreturn]] void
bad_key(const std::filesystem::path& path)
{
  throw core::Error(core::Errc::config_invalid,
                    "MCP session key " + path.string() + " is unreadable or not " +
                        std::to_string(kSecretHexChars) +
                        " hex characters; remove it to have a new one created (open /mcp "
                        "sessions then need to initialize again)");
}

// Into `secret` (an out-parameter: g++ 12 at -O2 reports a false
// -Warray-bounds when this returns the string it read).
void
load_or_create_secret(const std::filesystem::path& path, std::string& secret)
{
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    std::ifstream in(path);
    std::getline(in, secret);
    if (secret.size() != kSecretHexChars ||
        secret.find_first_not_of("0123456789abcdef") != std::string::npos) {
      bad_key(path);
    }
    return;
  }
  secret = core::random_hex(kSecretHexChars / 2);
  core::write_file_atomically(path.string(), secret + "\n");
}

} // namespace

McpSessionIds::McpSessionIds(const std::string& state_dir)
{
  if (state_dir.empty()) {
    secret_ = core::random_hex(kSecretHexChars / 2);
    return;
  }
  const std::filesystem::path dir(state_dir);
  load_or_create_secret(dir / "mcp-session.key", secret_);
  revoked_path_ = (dir / "mcp-revoked").string();
  std::ifstream in(revoked_path_);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && revoked_.insert(line).second) {
      order_.push_back(line);
    }
  }
}

std::string
McpSessionIds::sign(std::string_view payload) const
{
  Poco::HMACEngine<Sha256Engine> hmac(secret_);
  hmac.update(payload.data(), payload.size());
  return Poco::DigestEngine::digestToHex(hmac.digest());
}

std::string
McpSessionIds::issue(std::string_view protocol_version) const
{
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  const nlohmann::json claims = {
      {"v", std::string(protocol_version)}, {"n", core::random_hex(8)}, {"t", now}};
  const std::string payload = base64url(claims.dump());
  return payload + "." + sign(payload);
}

std::optional<std::string>
McpSessionIds::verify(std::string_view id) const
{
  const auto dot = id.find('.');
  if (dot == std::string_view::npos || id.size() > 512) {
    return std::nullopt;
  }
  const std::string_view payload = id.substr(0, dot);
  const std::string_view signature = id.substr(dot + 1);
  const std::string expected = sign(payload);
  // Constant time: a client must not learn the signature byte by byte.
  if (signature.size() != expected.size()) {
    return std::nullopt;
  }
  unsigned char diff = 0;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    diff |= static_cast<unsigned char>(signature[i] ^ expected[i]);
  }
  if (diff != 0) {
    return std::nullopt;
  }
  {
    const std::lock_guard lock(mutex_);
    if (revoked_.count(std::string(signature)) != 0) {
      return std::nullopt;
    }
  }
  const auto text = from_base64url(payload);
  if (!text) {
    return std::nullopt;
  }
  const auto claims = nlohmann::json::parse(*text, nullptr, false);
  if (!claims.is_object() || !claims.contains("v") || !claims["v"].is_string()) {
    return std::nullopt;
  }
  return claims["v"].get<std::string>();
}

void
McpSessionIds::revoke(std::string_view id)
{
  const auto dot = id.find('.');
  if (dot == std::string_view::npos) {
    return;
  }
  std::string signature(id.substr(dot + 1));
  const std::lock_guard lock(mutex_);
  if (!revoked_.insert(signature).second) {
    return;
  }
  order_.push_back(signature);
  if (revoked_.size() > kMaxRevoked) {
    // Forget the oldest tenth at once, so the file is rewritten once per
    // thousand revocations, not on each (an old revoked id is only ever
    // presented by the client that ended it, long ago).
    while (revoked_.size() > kMaxRevoked - kMaxRevoked / 10) {
      revoked_.erase(order_.front());
      order_.pop_front();
    }
    if (revoked_path_.empty()) {
      return;
    }
    rewrite_ = true;
    unwritten_.clear();
    return;
  }
  if (!revoked_path_.empty()) {
    unwritten_.push_back(std::move(signature));
  }
}

void
McpSessionIds::persist()
{
  const std::lock_guard file_lock(file_mutex_);
  std::vector<std::string> lines;
  bool rewrite = false;
  {
    const std::lock_guard lock(mutex_);
    if (revoked_path_.empty()) {
      return;
    }
    rewrite = std::exchange(rewrite_, false);
    lines = rewrite ? std::vector<std::string>(order_.begin(), order_.end())
                    : std::exchange(unwritten_, {});
  }
  if (lines.empty() && !rewrite) {
    return;
  }
  std::string text;
  for (const auto& line : lines) {
    text += line + "\n";
  }
  if (rewrite || !std::filesystem::exists(revoked_path_)) {
    core::write_file_atomically(revoked_path_, text); // mode 0600
  } else {
    std::ofstream(revoked_path_, std::ios::app) << text;
  }
}

} // namespace exai::net
