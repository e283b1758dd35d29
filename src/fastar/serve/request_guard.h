// Who may talk to the server (serving-spec.md §6.6): the Host check against DNS rebinding and the
// Origin check on the WebSocket upgrade (WebSocket is not covered by CORS).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fastar::serve {

struct RequestGuard {
  std::string bind_host;                    // --host
  uint16_t port = 0;                        // the bound port
  std::vector<std::string> allowed_origins; // --allow-origin, e.g. "http://box.lan:8080"

  bool loopback() const;
  // Empty when `host` (the Host header) may be served; otherwise why not.
  std::string check_host(std::string_view host) const;
  // Empty when the upgrade may proceed: Origin equals http://<Host> or is allowed; a missing Origin
  // (a non-browser client) only on loopback.
  std::string check_origin(std::string_view host, std::optional<std::string_view> origin) const;
};

}  // namespace fastar::serve
