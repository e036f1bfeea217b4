#include "core/files/image_input.hpp"

#include "core/error.hpp"
#include "core/util/text.hpp"

#include <unistd.h>

#include <array>
#include <cerrno>

namespace exai::core {

namespace {

constexpr std::size_t kShown = 60;

[[noreturn]] void
refuse(std::string_view field, std::string_view value, const std::string& rule)
{
  const std::string shown = printable(value, kShown);
  throw Error(Errc::validation_error,
              std::string(field) + " '" + shown + "' " + rule,
              {{"field", field}, {"value", shown}, {"rule", rule}});
}

// The image type by its first bytes, or "" for anything else.
std::string_view
sniff(std::string_view head)
{
  if (head.substr(0, 8) == std::string_view("\x89PNG\r\n\x1a\n", 8)) {
    return "image/png";
  }
  if (head.substr(0, 3) == "\xff\xd8\xff") {
    return "image/jpeg";
  }
  if (head.substr(0, 6) == "GIF87a" || head.substr(0, 6) == "GIF89a") {
    return "image/gif";
  }
  if (head.size() >= 12 && head.substr(0, 4) == "RIFF" && head.substr(8, 4) == "WEBP") {
    return "image/webp";
  }
  return {};
}

bool
base64_text(std::string_view text)
{
  for (const char c : text) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '+' || c == '/' || c == '=';
    if (!ok) {
      return false;
    }
  }
  return !text.empty() && text.size() % 4 == 0;
}

ChatImage
data_url(std::string_view spec, std::string_view field, std::size_t max_bytes)
{
  const std::size_t comma = spec.find(',');
  const std::string_view header = comma == std::string_view::npos ? spec : spec.substr(0, comma);
  std::string mime;
  for (const std::string_view type : {"image/png", "image/jpeg", "image/gif", "image/webp"}) {
    if (header == "data:" + std::string(type) + ";base64") {
      mime = std::string(type);
    }
  }
  if (mime.empty()) {
    refuse(field, spec, "is not a data:image/(png|jpeg|gif|webp);base64, URL");
  }
  const std::string_view payload = spec.substr(comma + 1);
  if (payload.size() / 4 * 3 > max_bytes) {
    refuse(field,
           spec,
           "is larger than EXAI_IMAGE_MAX_BYTES (" + std::to_string(max_bytes) + " bytes)");
  }
  if (!base64_text(payload)) {
    refuse(field, spec, "is not valid base64");
  }
  ChatImage image;
  image.mime = std::move(mime);
  image.data_url = std::string(spec);
  return image;
}

} // namespace

ChatImage
load_image(const FileRoots& roots,
           std::string_view spec,
           std::string_view field,
           std::size_t max_bytes)
{
  if (spec.substr(0, 5) == "data:") {
    return data_url(spec, field, max_bytes);
  }
  auto opened = roots.open(spec);
  if (auto* refusal = std::get_if<PathRefusal>(&opened)) {
    refuse(field, spec, refusal->rule);
  }
  const auto& path = std::get<OpenedPath>(opened);
  if (path.directory()) {
    refuse(field, spec, "is a directory, not an image");
  }
  if (static_cast<std::uint64_t>(path.info.st_size) > max_bytes) {
    refuse(field,
           spec,
           "is larger than EXAI_IMAGE_MAX_BYTES (" + std::to_string(path.info.st_size) + " > " +
               std::to_string(max_bytes) + " bytes)");
  }
  ChatImage image;
  image.bytes.resize(static_cast<std::size_t>(path.info.st_size));
  std::size_t done = 0;
  while (done < image.bytes.size()) {
    const ssize_t n = ::pread(path.fd.get(),
                              image.bytes.data() + done,
                              image.bytes.size() - done,
                              static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      refuse(field, spec, "cannot be read");
    }
    done += static_cast<std::size_t>(n);
  }
  image.mime = std::string(sniff(image.bytes));
  if (image.mime.empty()) {
    refuse(field, spec, "is not a png, jpeg, gif or webp image");
  }
  return image;
}

} // namespace exai::core
