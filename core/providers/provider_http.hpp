#pragma once

// Provider endpoints beyond chat completions — the Files API (multipart
// upload, list, content, delete), GLM's web search, response headers, the
// reachability probe — as one interface, so core stays free of networking:
// net::UpstreamClient implements it over the same pooled connections,
// retries and key handling as chat; tests may substitute their own.

#include "core/providers/chat.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <map>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <variant>

namespace exai::core {

// A file sent as multipart/form-data: a "file" part plus plain fields.
struct MultipartFile {
  std::string filename;
  std::string content_type = "application/octet-stream";
  std::string bytes;
  std::map<std::string, std::string> fields; // e.g. {"purpose", "file-extract"}
};

struct ProviderHttpRequest {
  std::string method = "GET";                 // GET | POST | DELETE
  std::string path;                           // below the provider's base URL, e.g. "/files"
  std::string json_body;                      // POST with a JSON body
  std::optional<MultipartFile> upload;        // POST multipart/form-data instead
  std::map<std::string, std::string> headers; // extra request headers
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
};

// A 2xx answer.
struct ProviderHttpReply {
  int status = 200;
  std::map<std::string, std::string> headers; // names lower-cased
  std::string body;
  std::chrono::milliseconds latency{0};
};

// Failures are ChatFailure's codes; a provider's own error keeps its HTTP
// status, code and message in `details` (status, upstream_code, body).
using ProviderHttpOutcome = std::variant<ProviderHttpReply, ChatFailure>;

class ProviderHttp {
public:
  virtual ~ProviderHttp() = default;

  // One request to `provider_id`'s API with its key; retried like chat when
  // the provider is at capacity or failing (uploads included: a retried
  // upload at worst leaves a duplicate file). Blocking; returns promptly
  // once `stop` is requested. Thread-safe.
  virtual ProviderHttpOutcome
  send(std::string_view provider_id, const ProviderHttpRequest& request, std::stop_token stop) = 0;

  // SHA-256 of `bytes` as lower-case hex: the upload cache's key (core has
  // no hash of its own).
  virtual std::string content_digest(std::string_view bytes) const = 0;
};

} // namespace exai::core
