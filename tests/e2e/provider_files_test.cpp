// The provider file tools end to end against the fakes' Files API:
// kimi_upload_files (dedupe by content, extraction), kimi_chat_with_files,
// kimi_manage_files and glm_upload_file; file roots, the size cap and the
// provider's own errors.

#include "tests/support/provider_daemon.hpp"

#include <catch2/catch.hpp>

namespace {

using exai::test::ProviderDaemon;
using exai::test::RecordedRequest;
using exai::test::ServeProcess;
using nlohmann::json;

std::size_t
uploads(const exai::test::FakeUpstream& fake)
{
  std::size_t count = 0;
  for (const auto& request : fake.requests()) {
    count += request.method == "POST" && request.path == "/v1/files" ? 1 : 0;
  }
  return count;
}

} // namespace

TEST_CASE("kimi_upload_files uploads once per content and returns the extracted text",
          "[e2e][provider][files]")
{
  ProviderDaemon d;
  const std::string a = d.file("notes/a.txt", "alpha notes\nline two\n");
  const std::string copy = d.file("notes/copy.txt", "alpha notes\nline two\n");
  const json first = d.content("kimi_upload_files", {{"files", json::array({a})}});
  REQUIRE(first.size() == 1);
  CHECK(first[0]["cached"] == false);
  CHECK(first[0]["filename"] == "a.txt");
  CHECK(first[0]["content"] == "alpha notes\nline two\n");
  CHECK(first[0]["size_bytes"] == 21);
  const std::string id = first[0]["file_id"].get<std::string>();

  const json again = d.content("kimi_upload_files", {{"files", json::array({a, copy})}});
  CHECK(again[0]["cached"] == true);
  CHECK(again[1]["cached"] == true);
  CHECK(again[1]["file_id"] == id);
  CHECK(uploads(d.kimi) == 1);
  const auto sent = d.kimi.requests()[0];
  CHECK(sent.body.find("name=\"purpose\"") != std::string::npos);
  CHECK(sent.body.find("file-extract") != std::string::npos);
  CHECK(sent.headers.at("Content-Type").rfind("multipart/form-data; boundary=", 0) == 0);

  const std::string other = d.file("notes/b.txt", "beta");
  const json fresh =
      d.content("kimi_upload_files", {{"files", json::array({other})}, {"include_content", false}});
  CHECK(fresh[0]["cached"] == false);
  CHECK_FALSE(fresh[0].contains("content"));
  CHECK(uploads(d.kimi) == 2);
}

TEST_CASE("uploads refuse paths outside the roots and files over the size cap",
          "[e2e][provider][files]")
{
  ProviderDaemon d(ServeProcess::Env{{"EXAI_UPLOAD_MAX_BYTES", "1024"}});
  const json outside = d.error("kimi_upload_files", {{"files", json::array({"/etc/hostname"})}});
  CHECK(outside["code"] == "VALIDATION_ERROR");
  CHECK(outside["details"]["field"] == "files[0]");
  CHECK(outside["details"]["value"] == "/etc/hostname");
  CHECK(outside["details"]["rule"].get<std::string>().find("outside") != std::string::npos);

  std::string big(2000, 'x');
  const std::string path = d.file("big.txt", big);
  const json large = d.error("glm_upload_file", {{"file", path}});
  CHECK(large["code"] == "VALIDATION_ERROR");
  CHECK(large["details"]["field"] == "file");
  CHECK(large["details"]["rule"] == "is 2000 bytes, over EXAI_UPLOAD_MAX_BYTES=1024");

  const json directory = d.error("glm_upload_file", {{"file", d.roots.path()}});
  CHECK(directory["details"]["rule"] == "is a directory; upload files one by one");
  CHECK(d.upstream_requests() == 0);
}

TEST_CASE("an upload the provider refuses keeps its status and message", "[e2e][provider][files]")
{
  ProviderDaemon d;
  const std::string path = d.file("refused.txt", "please [[status=413]]");
  const json error = d.error("kimi_upload_files", {{"files", json::array({path})}});
  CHECK(error["code"] == "PROVIDER_ERROR");
  CHECK(error["details"]["status"] == 413);
  CHECK(error["details"]["upstream_code"] == "413");
  CHECK(error["details"]["upstream_message"] == "fake upload refused: refused.txt");
  CHECK(error["details"]["field"] == "files[0]");
  CHECK(error["details"]["value"] == path);
}

TEST_CASE("kimi_chat_with_files sends each file's text as a system message",
          "[e2e][provider][files]")
{
  ProviderDaemon d;
  const std::string a = d.file("a.txt", "file A says hi");
  const std::string b = d.file("b.txt", "file B says bye");
  const json uploaded = d.content("kimi_upload_files", {{"files", json::array({a})}});
  const json env = d.reply("kimi_chat_with_files",
                           {{"prompt", "summarise"},
                            {"file_ids", json::array({uploaded[0]["file_id"]})},
                            {"files", json::array({b})}});
  CHECK(env["content"] == "echo: summarise");
  CHECK(env["metadata"]["provider_used"] == "kimi");
  CHECK(env["metadata"]["file_ids"].size() == 2);
  const auto requests = d.kimi.requests();
  const json chat = json::parse(requests.back().body);
  REQUIRE(chat["messages"].size() == 3);
  CHECK(chat["messages"][0] == json{{"role", "system"}, {"content", "file A says hi"}});
  CHECK(chat["messages"][1] == json{{"role", "system"}, {"content", "file B says bye"}});
  CHECK(chat["messages"][2] == json{{"role", "user"}, {"content", "summarise"}});

  const json none = d.error("kimi_chat_with_files", {{"prompt", "x"}});
  CHECK(none["code"] == "VALIDATION_ERROR");
  CHECK(none["details"]["field"] == "file_ids");
  const json unknown =
      d.error("kimi_chat_with_files", {{"prompt", "x"}, {"file_ids", json::array({"file-nope"})}});
  CHECK(unknown["code"] == "PROVIDER_ERROR");
  CHECK(unknown["details"]["status"] == 404);
  CHECK(unknown["details"]["file_id"] == "file-nope");
}

TEST_CASE("kimi_manage_files lists, deletes and cleans up by age", "[e2e][provider][files]")
{
  ProviderDaemon d;
  const json up =
      d.content("kimi_upload_files",
                {{"files", json::array({d.file("1.txt", "one"), d.file("2.txt", "two")})},
                 {"include_content", false}});
  const json listed = d.content("kimi_manage_files", {{"operation", "list"}});
  CHECK(listed["count"] == 2);
  const std::string first = up[0]["file_id"].get<std::string>();
  const json deleted =
      d.content("kimi_manage_files", {{"operation", "delete"}, {"file_id", first}});
  CHECK(deleted["deleted"] == true);
  CHECK(d.content("kimi_manage_files", {{"operation", "list"}})["count"] == 1);

  // A deleted file's content is uploaded afresh.
  const json again =
      d.content("kimi_upload_files",
                {{"files", json::array({d.file("1.txt", "one")})}, {"include_content", false}});
  CHECK(again[0]["cached"] == false);

  const json young =
      d.content("kimi_manage_files", {{"operation", "cleanup"}, {"older_than_hours", 24}});
  CHECK(young["matched"].empty());
  const json dry = d.content(
      "kimi_manage_files", {{"operation", "cleanup"}, {"older_than_hours", 0}, {"dry_run", true}});
  CHECK(dry["matched"].size() == 2);
  CHECK(dry["deleted_count"] == 0);
  const json all =
      d.content("kimi_manage_files", {{"operation", "cleanup"}, {"older_than_hours", 0}});
  CHECK(all["deleted_count"] == 2);
  CHECK(d.content("kimi_manage_files", {{"operation", "list"}})["count"] == 0);

  const json missing = d.error("kimi_manage_files", {{"operation", "delete"}});
  CHECK(missing["code"] == "VALIDATION_ERROR");
  CHECK(missing["details"]["field"] == "file_id");
  const json gone = d.error("kimi_manage_files", {{"operation", "delete"}, {"file_id", first}});
  CHECK(gone["code"] == "PROVIDER_ERROR");
  CHECK(gone["details"]["status"] == 404);
  CHECK(gone["details"]["upstream_message"].get<std::string>().find("not found") !=
        std::string::npos);
}

TEST_CASE("glm_upload_file uploads with purpose agent, once per content", "[e2e][provider][files]")
{
  ProviderDaemon d;
  const std::string path = d.file("g.txt", "for glm");
  const json first = d.content("glm_upload_file", {{"file", path}});
  CHECK(first["cached"] == false);
  CHECK(first["filename"] == "g.txt");
  const json second = d.content("glm_upload_file", {{"file", path}});
  CHECK(second["cached"] == true);
  CHECK(second["file_id"] == first["file_id"]);
  CHECK(uploads(d.glm) == 1);
  CHECK(d.glm.requests()[0].body.find("agent") != std::string::npos);
  CHECK(d.kimi.request_count() == 0);
}

TEST_CASE("file tools need their provider configured", "[e2e][provider][files]")
{
  ProviderDaemon d({}, "kimi");
  const json error = d.error("kimi_upload_files", {{"files", json::array({d.file("x.txt", "x")})}});
  CHECK(error["code"] == "PROVIDER_UNAVAILABLE");
  CHECK(error["message"].get<std::string>().find("KIMI_API_KEY") != std::string::npos);
}
