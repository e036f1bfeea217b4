#include "core/util/enum_names.hpp"

#include <catch2/catch.hpp>

namespace {

enum class Colour { red, green, blue };
constexpr exai::core::EnumNames<Colour, 3> kColours{{"red", "green", "blue"}, "red"};

} // namespace

TEST_CASE("EnumNames answers each enumerator's word and the fallback outside the table",
          "[core][util]")
{
  CHECK(kColours(Colour::red) == "red");
  CHECK(kColours(Colour::green) == "green");
  CHECK(kColours(Colour::blue) == "blue");
  CHECK(kColours(static_cast<Colour>(7)) == "red");
  static_assert(kColours(Colour::blue) == "blue", "usable at compile time");
}
