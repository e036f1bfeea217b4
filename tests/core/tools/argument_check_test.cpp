#include "core/error.hpp"
#include "core/tools/argument_check.hpp"

#include <catch2/catch.hpp>

using namespace exai::core;
using nlohmann::json;

namespace {

const json kSchema = {
    {"type", "object"},
    {"properties",
     {{"prompt", {{"type", "string"}, {"minLength", 1}}},
      {"temperature", {{"type", "number"}, {"minimum", 0}, {"maximum", 1}}},
      {"step_number", {{"type", "integer"}, {"minimum", 1}}},
      {"mode", {{"type", "string"}, {"enum", {"a", "b"}}}},
      {"files", {{"type", "array"}, {"items", {{"type", "string"}}}, {"maxItems", 2}}},
      {"models",
       {{"type", "array"},
        {"minItems", 1},
        {"items",
         {{"type", "object"},
          {"properties",
           {{"model", {{"type", "string"}}},
            {"stance", {{"type", "string"}, {"enum", {"for", "against", "neutral"}}}}}},
          {"required", {"model"}},
          {"additionalProperties", false}}}}}}},
    {"required", {"prompt"}},
    {"additionalProperties", false}};

json
details_of(const json& arguments)
{
  try {
    check_arguments("tool", kSchema, arguments);
  } catch (const Error& e) {
    CHECK(e.code() == Errc::validation_error);
    json details = e.details();
    details["message"] = e.what();
    return details;
  }
  return nullptr;
}

} // namespace

TEST_CASE("arguments that fit the schema pass; null counts as absent", "[core][arguments]")
{
  CHECK_NOTHROW(check_arguments("tool", kSchema, {{"prompt", "hi"}, {"temperature", nullptr}}));
  CHECK_NOTHROW(check_arguments(
      "tool",
      kSchema,
      {{"prompt", "hi"}, {"step_number", 2.0}, {"models", {{{"model", "m"}, {"stance", "for"}}}}}));
}

TEST_CASE("each violation names the field, the value and the rule", "[core][arguments]")
{
  CHECK(details_of(json::object())["field"] == "prompt");
  CHECK(details_of(json::object())["rule"] == "required");
  const json unknown = details_of({{"prompt", "x"}, {"promt", "y"}});
  CHECK(unknown["field"] == "promt");
  CHECK_THAT(unknown["message"].get<std::string>(),
             Catch::Contains("allowed: files, mode, models, prompt, step_number, temperature"));
  const json range = details_of({{"prompt", "x"}, {"temperature", 2}});
  CHECK(range["value"] == "2");
  CHECK(range["rule"] == "must be from 0 to 1");
  CHECK(details_of({{"prompt", ""}})["rule"] == "must not be empty");
  CHECK(details_of({{"prompt", 5}})["rule"] == "must be a string");
  CHECK(details_of({{"prompt", "x"}, {"step_number", 1.5}})["rule"] == "must be an integer");
  CHECK(details_of({{"prompt", "x"}, {"step_number", 0}})["rule"] == "must be at least 1");
  CHECK(details_of({{"prompt", "x"}, {"mode", "c"}})["rule"] == "must be one of: a, b");
  CHECK(details_of({{"prompt", "x"}, {"files", {"a", "b", "c"}}})["rule"] ==
        "must have at most 2 items");
  CHECK(details_of({{"prompt", "x"}, {"files", {"a", 3}}})["field"] == "files[1]");
  const json nested =
      details_of({{"prompt", "x"}, {"models", {{{"model", "m"}, {"stance", "maybe"}}}}});
  CHECK(nested["field"] == "models[0].stance");
  CHECK(details_of({{"prompt", "x"}, {"models", {{{"stance", "for"}}}}})["field"] ==
        "models[0].model");
  CHECK(details_of({{"prompt", "x"}, {"models", json::array()}})["rule"] ==
        "must have at least 1 item");
  CHECK(details_of(json::array())["field"] == "arguments");
}

TEST_CASE("long or hostile values are shortened and made printable in errors", "[core][arguments]")
{
  // Built in place: g++ 12 at -O2 misreads `string(n, c) + "..."` (-Warray-bounds).
  std::string hostile(10000, 'z');
  hostile.push_back('\x01');
  const json big = details_of({{"prompt", "x"}, {"mode", hostile}});
  CHECK(big["value"].get<std::string>().size() < 200);
  CHECK(big["message"].get<std::string>().find('\x01') == std::string::npos);
}
