#include "fastar/serve/request_guard.h"

#include <algorithm>

namespace fastar::serve {

bool RequestGuard::loopback() const {
  return bind_host == "127.0.0.1" || bind_host == "localhost" || bind_host == "::1" || bind_host.rfind("127.", 0) == 0;
}

std::string RequestGuard::check_host(std::string_view host) const {
  // GCC 12 warns falsely (-Wrestrict) on "literal" + std::string; the names are built by append.
  auto with_port = [this](std::string name) { return name.append(":").append(std::to_string(port)); };
  std::vector<std::string> accepted = {with_port("127.0.0.1"), with_port("localhost"), with_port("[::1]")};
  if (!loopback()) {
    accepted.push_back(with_port(bind_host.find(':') != std::string::npos ? std::string("[").append(bind_host).append("]") : bind_host));
    for (const std::string& origin : allowed_origins)
      if (origin.rfind("http://", 0) == 0) accepted.push_back(origin.substr(7));
  }
  if (std::find(accepted.begin(), accepted.end(), host) != accepted.end()) return "";
  return "Host '" + std::string(host.substr(0, 100)) + "' is not this server (expected e.g. " + accepted.front() + ")";
}

std::string RequestGuard::check_origin(std::string_view host, std::optional<std::string_view> origin) const {
  if (!origin) return loopback() ? "" : "a WebSocket upgrade without an Origin header is refused off loopback";
  if (*origin == "http://" + std::string(host)) return "";
  if (std::find(allowed_origins.begin(), allowed_origins.end(), *origin) != allowed_origins.end()) return "";
  return "Origin '" + std::string(origin->substr(0, 100)) + "' is not allowed (same origin only; see --allow-origin)";
}

}  // namespace fastar::serve
