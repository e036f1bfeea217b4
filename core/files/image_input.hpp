#pragma once

// Images a call sends to a vision model: an absolute path under the file
// roots (png, jpeg, gif or webp, recognised by content, not by name) or a
// data: URL, each at most EXAI_IMAGE_MAX_BYTES.

#include "core/files/file_roots.hpp"
#include "core/providers/chat.hpp"

#include <cstddef>
#include <string_view>

namespace exai::core {

// Throws Error(validation_error) naming `field` (images[i]), the value
// (shortened) and the rule.
ChatImage load_image(const FileRoots& roots,
                     std::string_view spec,
                     std::string_view field,
                     std::size_t max_bytes);

} // namespace exai::core
