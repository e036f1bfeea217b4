#include "core/calls/shared_store.hpp"

#include "core/log.hpp"
#include "core/util/text.hpp"

#include <exception>

namespace exai::core {

std::optional<std::string>
get_or_nothing(SharedStore& store, const std::string& key) noexcept
{
  try {
    return store.get(key);
  } catch (const std::exception& e) {
    log::get("core")->warn(
        "shared store read failed key={} error=\"{}\"", printable(key, 96), e.what());
  } catch (...) {
    log::get("core")->warn("shared store read failed key={}", printable(key, 96));
  }
  return std::nullopt;
}

} // namespace exai::core
