// UpstreamClient as core::ProviderHttp: Files API multipart uploads, GET and
// DELETE, answer headers, provider errors kept in details, the key scrubbed.

#include "net/upstream/upstream_client.hpp"
#include "tests/net/upstream/upstream_fixture.hpp"
#include "tests/support/fake_upstream.hpp"

#include <catch2/catch.hpp>

using namespace exai::core;
using namespace exai::net;
using namespace exai::test;
using nlohmann::json;

namespace {

FakeUpstream::Options
keyed()
{
  FakeUpstream::Options options;
  options.expected_key = kUpstreamKey;
  return options;
}

UpstreamClient
client_for(const FakeUpstream& fake)
{
  return UpstreamClient({endpoint_for(fake, "kimi")});
}

// Kimi on a fake upstream that checks the key (TEST_CASE_METHOD).
struct KeyedKimi {
  FakeUpstream fake{keyed()};
  UpstreamClient client = client_for(fake);
};

ProviderHttpRequest
request(std::string method, std::string path)
{
  ProviderHttpRequest r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  return r;
}

} // namespace

TEST_CASE_METHOD(KeyedKimi,
                 "a multipart upload reaches the Files API with its fields and the key",
                 "[net][provider_http]")
{
  auto upload = request("POST", "/files");
  upload.upload =
      MultipartFile{"notes.txt", "text/plain", "hello files", {{"purpose", "file-extract"}}};
  const auto outcome = client.send("kimi", upload, {});
  REQUIRE(std::holds_alternative<ProviderHttpReply>(outcome));
  const json file = json::parse(std::get<ProviderHttpReply>(outcome).body);
  CHECK(file["filename"] == "notes.txt");
  CHECK(file["bytes"] == 11);
  CHECK(file["purpose"] == "file-extract");

  const auto content = client.send(
      "kimi", request("GET", "/files/" + file["id"].get<std::string>() + "/content"), {});
  REQUIRE(std::holds_alternative<ProviderHttpReply>(content));
  CHECK(json::parse(std::get<ProviderHttpReply>(content).body)["content"] == "hello files");
}

TEST_CASE_METHOD(KeyedKimi,
                 "answer headers come back lower-cased and request headers are sent",
                 "[net][provider_http]")
{
  auto chat = request("POST", "/chat/completions");
  chat.json_body =
      R"({"model":"kimi-k2-0905-preview","messages":[{"role":"user","content":"hi"}]})";
  chat.headers = {{"Idempotency-Key", "idem-9"}};
  const auto outcome = client.send("kimi", chat, {});
  REQUIRE(std::holds_alternative<ProviderHttpReply>(outcome));
  const auto& headers = std::get<ProviderHttpReply>(outcome).headers;
  CHECK(headers.at("idempotency-key") == "idem-9");
  CHECK(headers.count("msh-request-id") == 1);
}

TEST_CASE_METHOD(KeyedKimi,
                 "a provider error keeps its status, code and message, never the key",
                 "[net][provider_http]")
{
  const auto outcome = client.send("kimi", request("DELETE", "/files/file-missing"), {});
  REQUIRE(std::holds_alternative<ChatFailure>(outcome));
  const auto& failure = std::get<ChatFailure>(outcome);
  CHECK(failure.code == exai::core::Errc::provider_error);
  CHECK(failure.details["status"] == 404);
  CHECK(failure.details["upstream_code"] == "404");
  CHECK(failure.details["upstream_message"] == "file file-missing not found");
  CHECK(failure.details["operation"] == "DELETE /files/file-missing");
  CHECK(failure.details.dump().find(kUpstreamKey) == std::string::npos);
  CHECK(client.send("nope", request("GET", "/files"), {}).index() == 1);
}

TEST_CASE("content_digest is SHA-256 in hex", "[net][provider_http]")
{
  FakeUpstream fake;
  auto client = client_for(fake);
  CHECK(client.content_digest("abc") ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
