#pragma once

// The operator page's files, compiled in from net/http/ui/ (embed_ui.cmake).

#include <string_view>
#include <vector>

namespace exai::net {

struct UiAsset {
  std::string_view name;         // "index.html", "app.css", "app.js"
  std::string_view content_type; // with charset
  std::string_view body;
};

// Every file of the page, in a fixed order (index.html first).
const std::vector<UiAsset>& ui_assets();

} // namespace exai::net
