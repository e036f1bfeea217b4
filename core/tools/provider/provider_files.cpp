#include "core/tools/provider/provider_files.hpp"

#include "core/config/config.hpp"
#include "core/files/file_roots.hpp"
#include "core/tools/daemon_view.hpp"
#include "core/util/text.hpp"

#include <unistd.h>

namespace exai::core::tools {

namespace {

std::string
cache_key(std::string_view provider, const std::string& purpose, const std::string& digest)
{
  return std::string(provider) + "\n" + purpose + "\n" + digest;
}

std::string
deleted_key(std::string_view provider, const std::string& file_id)
{
  return "deleted\n" + std::string(provider) + "\n" + file_id;
}

[[noreturn]] void
refuse(const std::string& field, const std::string& value, const std::string& rule)
{
  throw Error(Errc::validation_error,
              "argument '" + field + "' = \"" + printable(value, 200) + "\" is invalid: " + rule,
              {{"field", field}, {"value", printable(value, 200)}, {"rule", rule}});
}

} // namespace

CallPlan
provider_plan(const PlanInput& input, std::string_view provider)
{
  const ProviderConfig* config = input.providers.find(provider);
  if (config == nullptr || !config->available()) {
    const std::string name = provider == kKimiProviderId ? "Kimi" : "GLM";
    throw Error(Errc::provider_unavailable,
                name + " is not configured" +
                    (config != nullptr && !config->disabled_reason.empty()
                         ? ": " + config->disabled_reason
                         : std::string(provider == kKimiProviderId ? " (set KIMI_API_KEY)"
                                                                   : " (set GLM_API_KEY)")),
                {{"provider", std::string(provider)}});
  }
  CallPlan plan;
  plan.provider = std::string(provider);
  return plan;
}

ProviderHttp&
provider_http(const ToolContext& context)
{
  if (context.http == nullptr) {
    throw Error(Errc::provider_unavailable, "this daemon has no provider HTTP client");
  }
  return *context.http;
}

ProviderHttpRequest
http_request(const ToolContext& context, std::string method, std::string path)
{
  ProviderHttpRequest request;
  request.method = std::move(method);
  request.path = std::move(path);
  request.deadline = context.deadline;
  return request;
}

std::variant<nlohmann::json, ToolFailure>
json_reply(ProviderHttpOutcome outcome, std::string_view what)
{
  if (auto* failure = std::get_if<ChatFailure>(&outcome)) {
    return ToolFailure{
        failure->code, std::string(what) + ": " + failure->message, failure->details};
  }
  const auto& reply = std::get<ProviderHttpReply>(outcome);
  nlohmann::json parsed = nlohmann::json::parse(reply.body, nullptr, false);
  if (parsed.is_discarded()) {
    return ToolFailure{Errc::provider_error,
                       std::string(what) + ": the provider's answer is not JSON",
                       {{"body", printable(reply.body, 300)}}};
  }
  return parsed;
}

std::variant<UploadedFile, ToolFailure>
upload_file(ToolContext& context,
            std::string_view provider,
            const std::string& path,
            const std::string& field,
            const std::string& purpose)
{
  ProviderHttp& http = provider_http(context);
  auto opened = context.file_roots.open(path);
  if (auto* refusal = std::get_if<PathRefusal>(&opened)) {
    refuse(field, path, refusal->rule);
  }
  const auto& file = std::get<OpenedPath>(opened);
  if (file.directory()) {
    refuse(field, path, "is a directory; upload files one by one");
  }
  const auto size = static_cast<std::size_t>(file.info.st_size);
  if (size > context.config.upload_max_bytes) {
    refuse(field,
           path,
           "is " + std::to_string(size) + " bytes, over EXAI_UPLOAD_MAX_BYTES=" +
               std::to_string(context.config.upload_max_bytes));
  }
  std::string bytes(size, '\0');
  std::size_t done = 0;
  while (done < size) {
    const ssize_t n =
        ::pread(file.fd.get(), bytes.data() + done, size - done, static_cast<off_t>(done));
    if (n <= 0) {
      refuse(field, path, "cannot be read");
    }
    done += static_cast<std::size_t>(n);
  }
  UploadedFile uploaded;
  uploaded.path = path;
  const auto slash = path.rfind('/');
  uploaded.filename = slash == std::string::npos ? path : path.substr(slash + 1);
  uploaded.bytes = size;

  const std::string key = cache_key(provider, purpose, http.content_digest(bytes));
  if (context.daemon != nullptr) {
    if (auto id = context.daemon->uploads.get(key);
        id && !context.daemon->uploads.get(deleted_key(provider, *id))) {
      uploaded.file_id = *id;
      uploaded.cached = true;
      return uploaded;
    }
  }
  ProviderHttpRequest request = http_request(context, "POST", "/files");
  request.upload = MultipartFile{
      uploaded.filename, "application/octet-stream", std::move(bytes), {{"purpose", purpose}}};
  auto reply = json_reply(http.send(provider, request, context.stop), "upload of " + path);
  if (auto* failure = std::get_if<ToolFailure>(&reply)) {
    failure->details["field"] = field;
    failure->details["value"] = path;
    return std::move(*failure);
  }
  const auto& answer = std::get<nlohmann::json>(reply);
  if (!answer.is_object() || !answer.contains("id") || !answer["id"].is_string()) {
    return ToolFailure{Errc::provider_error,
                       "upload of " + path + ": the provider's answer has no file id",
                       {{"body", printable(answer.dump(), 300)}}};
  }
  uploaded.file_id = answer["id"].get<std::string>();
  if (context.daemon != nullptr) {
    context.daemon->uploads.put(key, uploaded.file_id);
  }
  return uploaded;
}

std::variant<std::string, ToolFailure>
file_text(ToolContext& context, std::string_view provider, const std::string& file_id)
{
  auto outcome = provider_http(context).send(
      provider, http_request(context, "GET", "/files/" + file_id + "/content"), context.stop);
  if (auto* failure = std::get_if<ChatFailure>(&outcome)) {
    nlohmann::json details = failure->details;
    details["file_id"] = file_id;
    return ToolFailure{
        failure->code, "content of file " + file_id + ": " + failure->message, std::move(details)};
  }
  std::string& body = std::get<ProviderHttpReply>(outcome).body;
  const auto parsed = nlohmann::json::parse(body, nullptr, false);
  if (parsed.is_object() && parsed.contains("content") && parsed["content"].is_string()) {
    return parsed["content"].get<std::string>();
  }
  return std::move(body);
}

void
forget_upload(const ToolContext& context, std::string_view provider, const std::string& file_id)
{
  if (context.daemon != nullptr) {
    context.daemon->uploads.put(deleted_key(provider, file_id), "");
  }
}

} // namespace exai::core::tools
