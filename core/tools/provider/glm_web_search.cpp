// glm_web_search: GLM's own web search endpoint (POST /web_search), raw
// results. No model call.

#include "core/tools/builtin.hpp"
#include "core/tools/provider/provider_files.hpp"

namespace exai::core::tools {

namespace {

class GlmWebSearch final : public Tool {
public:
  const ToolSpec& spec() const override
  {
    static const ToolSpec spec = [] {
      ToolSpec s;
      s.name = "glm_web_search";
      s.title = "GLM web search";
      s.description =
          "Search the web with GLM's web search API (POST /web_search) and return its results "
          "as GLM sends them (title, link, content, publish date, ...). No model call.";
      s.properties = {
          {"search_query",
           {{"type", "string"},
            {"minLength", 1},
            {"maxLength", 1000},
            {"description", "What to search for"}}},
          {"count",
           {{"type", "integer"},
            {"minimum", 1},
            {"maximum", 50},
            {"default", 10},
            {"description", "How many results"}}},
          {"search_engine",
           {{"type", "string"},
            {"minLength", 1},
            {"maxLength", 64},
            {"default", "search-prime"},
            {"description", "GLM's search engine (e.g. search-prime, search_std, search_pro)"}}},
          {"search_domain_filter",
           {{"type", "string"},
            {"minLength", 1},
            {"maxLength", 255},
            {"description", "Only results from this domain"}}},
          {"search_recency_filter",
           {{"type", "string"},
            {"enum", {"oneDay", "oneWeek", "oneMonth", "oneYear", "noLimit"}},
            {"default", "noLimit"},
            {"description", "Only results from this period"}}}};
      s.required = {"search_query"};
      return s;
    }();
    return spec;
  }
  CallPlan plan(const PlanInput& input) const override
  {
    return provider_plan(input, kGlmProviderId);
  }
  ToolResult run(ToolContext& context) const override
  {
    const auto& args = context.arguments;
    nlohmann::json body = {
        {"search_query", string_arg(args, "search_query").value_or("")},
        {"count", int_arg(args, "count", 1, 50).value_or(10)},
        {"search_engine", string_arg(args, "search_engine").value_or("search-prime")},
        {"search_recency_filter", string_arg(args, "search_recency_filter").value_or("noLimit")}};
    if (const auto domain = string_arg(args, "search_domain_filter")) {
      body["search_domain_filter"] = *domain;
    }
    ProviderHttpRequest request = http_request(context, "POST", "/web_search");
    request.json_body = body.dump();
    auto reply = json_reply(provider_http(context).send(kGlmProviderId, request, context.stop),
                            "GLM web search");
    if (auto* failure = std::get_if<ToolFailure>(&reply)) {
      return std::move(*failure);
    }
    const auto& results = std::get<nlohmann::json>(reply);
    std::size_t count = 0;
    if (results.is_object() && results.contains("search_result") &&
        results["search_result"].is_array()) {
      count = results["search_result"].size();
    }
    return ToolSuccess{
        {envelope(name(),
                  results.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                  "json",
                  {{"provider_used", std::string(kGlmProviderId)}, {"results", count}})}};
  }
};

} // namespace

std::unique_ptr<Tool>
make_glm_web_search()
{
  return std::make_unique<GlmWebSearch>();
}

} // namespace exai::core::tools
