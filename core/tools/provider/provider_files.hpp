#pragma once

// What the provider file tools share: the provider's HTTP interface (or why
// there is none), reading a local file for upload under the file roots and
// the size cap, uploading it once per content (the daemon's upload cache),
// and reading provider JSON answers.

#include "core/providers/provider_http.hpp"
#include "core/tools/tool.hpp"

#include <nlohmann/json.hpp>

#include <string>
#include <variant>

namespace exai::core::tools {

// One file as uploaded (or found in the upload cache).
struct UploadedFile {
  std::string path;     // as the client named it
  std::string filename; // its base name, as sent
  std::string file_id;  // the provider's id
  std::size_t bytes = 0;
  bool cached = false; // same content uploaded earlier: not sent again
};

// The plan of a tool that talks to `provider` without a model: that
// provider's capacity, no model. Throws Error(provider_unavailable) when the
// provider is not configured.
CallPlan provider_plan(const PlanInput& input, std::string_view provider);

// The daemon's ProviderHttp; throws Error(provider_unavailable) when none.
ProviderHttp& provider_http(const ToolContext& context);

// Uploads the file `path` (argument `field`) to `provider` with `purpose`,
// unless the same bytes were uploaded there with that purpose within the
// cache's TTL. Refuses (Error(validation_error) naming field, value and
// rule) paths outside the file roots, directories and special files, and
// files over EXAI_UPLOAD_MAX_BYTES. A provider error is a ToolFailure
// keeping the provider's status, code and message in its details.
std::variant<UploadedFile, ToolFailure> upload_file(ToolContext& context,
                                                    std::string_view provider,
                                                    const std::string& path,
                                                    const std::string& field,
                                                    const std::string& purpose);

// Forgets `file_id` of `provider` in the upload cache (after a delete), so
// the same content is uploaded afresh next time.
void
forget_upload(const ToolContext& context, std::string_view provider, const std::string& file_id);

// The text the provider extracted from `file_id` (Kimi: GET
// /files/{id}/content, whose JSON `content` field holds it).
std::variant<std::string, ToolFailure>
file_text(ToolContext& context, std::string_view provider, const std::string& file_id);

// A request below the call's deadline.
ProviderHttpRequest http_request(const ToolContext& context, std::string method, std::string path);

// The outcome as JSON, or a ToolFailure (the provider's error kept in
// details; a 2xx body that is not JSON is a PROVIDER_ERROR).
std::variant<nlohmann::json, ToolFailure> json_reply(ProviderHttpOutcome outcome,
                                                     std::string_view what);

} // namespace exai::core::tools
