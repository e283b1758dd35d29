// The plain HTTP side of the server (serving-spec.md §6.1): the embedded page, GET /healthz and
// GET /metrics. The request path only selects one of these fixed answers; it never reaches the
// filesystem (§6.6).
#pragma once

#include <string>
#include <string_view>

#include "fastar/serve/chunk_source.h"
#include "fastar/serve/session_registry.h"

namespace fastar::serve {

struct HttpReply {
  int status = 200;
  std::string content_type;
  std::string body;
};

struct ServerFacts {
  std::string version;
  const SourceInfo* source = nullptr;
  const SessionRegistry* registry = nullptr;
};

HttpReply route_http(std::string_view method, std::string_view target, const ServerFacts& facts);

}  // namespace fastar::serve
