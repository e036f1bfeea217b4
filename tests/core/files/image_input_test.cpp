#include "core/error.hpp"
#include "core/files/image_input.hpp"
#include "tests/support/temp_dir.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

using namespace exai::core;

namespace {

std::string
error_of(const FileRoots& roots, const std::string& spec, std::size_t max = 1 << 20)
{
  try {
    (void)load_image(roots, spec, "images[0]", max);
  } catch (const Error& e) {
    CHECK(e.code() == Errc::validation_error);
    CHECK(e.details()["field"] == "images[0]");
    return e.what();
  }
  return {};
}

} // namespace

TEST_CASE("image files are recognised by content and read under the roots", "[core][files]")
{
  exai::test::TempDir tmp;
  const std::string root = std::filesystem::canonical(tmp.path()).string();
  const std::string png = std::string("\x89PNG\r\n\x1a\n", 8) + "rest";
  std::ofstream(root + "/shot.png", std::ios::binary) << png;
  std::ofstream(root + "/fake.png") << "not an image";
  const FileRoots roots({root});
  const ChatImage image = load_image(roots, root + "/shot.png", "images[0]", 1 << 20);
  CHECK(image.mime == "image/png");
  CHECK(image.bytes == png);
  CHECK(image.data_url.empty());
  CHECK_THAT(error_of(roots, root + "/fake.png"), Catch::Contains("not a png, jpeg, gif or webp"));
  CHECK_THAT(error_of(roots, root + "/shot.png", 4), Catch::Contains("EXAI_IMAGE_MAX_BYTES"));
  CHECK_THAT(error_of(roots, "/etc/hostname"), Catch::Contains("outside the allowed roots"));
  CHECK_THAT(error_of(roots, "shot.png"), Catch::Contains("absolute"));
}

TEST_CASE("data: URLs pass through when well-formed and small enough", "[core][files]")
{
  const FileRoots roots(std::vector<std::string>{});
  const ChatImage image = load_image(roots, "data:image/gif;base64,R0lGODlh", "images[0]", 100);
  CHECK(image.mime == "image/gif");
  CHECK(image.data_url == "data:image/gif;base64,R0lGODlh");
  CHECK_THAT(error_of(roots, "data:text/html;base64,PGh0bWw+"), Catch::Contains("data:image/"));
  CHECK_THAT(error_of(roots, "data:image/png;base64,@@@@"), Catch::Contains("not valid base64"));
  CHECK_THAT(error_of(roots, "data:image/png;base64," + std::string(400, 'A'), 100),
             Catch::Contains("larger than EXAI_IMAGE_MAX_BYTES"));
}
