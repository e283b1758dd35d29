#include "fastar/serve/http_routes.h"

#include <nlohmann/json.hpp>

#include "fastar/serve/web_page.h"

namespace fastar::serve {

HttpReply route_http(std::string_view method, std::string_view target, const ServerFacts& facts) {
  if (method != "GET" && method != "HEAD") return {405, "text/plain", "only GET is served\n"};
  const std::string_view path = target.substr(0, target.find('?'));
  if (path == "/" || path == "/index.html") return {200, "text/html; charset=utf-8", std::string(kIndexHtml)};
  if (path == "/app.js") return {200, "text/javascript; charset=utf-8", std::string(kAppJs)};
  if (path == "/healthz") {
    const nlohmann::json health = {{"status", "ok"},
                                   {"version", facts.version},
                                   {"sessions", facts.registry->open_sessions()},
                                   {"max_sessions", facts.registry->max_sessions()},
                                   {"source", facts.source->kind},
                                   {"model", facts.source->name},
                                   {"device", facts.source->device}};
    return {200, "application/json", health.dump() + "\n"};
  }
  if (path == "/metrics") return {200, "application/json", facts.registry->metrics().dump() + "\n"};
  return {404, "text/plain", "not found: this server has /, /app.js, /healthz, /metrics and the WebSocket /v1/stream\n"};
}

}  // namespace fastar::serve
