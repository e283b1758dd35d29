// One client's WebSocket (serving-spec.md §6.2–6.6) on the I/O thread: the accepted upgrade, the read
// loop (4 KiB cap, text only, a message-rate cap, hello first, schema-checked), the session's outbox
// (one write in flight; its bytes reported to the session, which caps chunks and bytes), the hello /
// idle / write-stall timeouts, and the close codes. Every member runs on the I/O thread; the engine and encoder reach it through
// SessionOutput, which posts there.
#pragma once

#include <memory>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "fastar/serve/message_rate_limiter.h"
#include "fastar/serve/request_guard.h"
#include "fastar/serve/session_registry.h"

namespace fastar::serve {

class WebSocketConnection;

struct ConnectionTimeouts {
  double hello_s = 10;    // --hello-timeout: the first message must come within this
  double idle_s = 300;    // --idle-timeout: time without any client message (pings do not count); bye{idle}, 1000
  double stall_s = 10;    // --stall-timeout: one write that makes no progress this long closes the session
};

// What the connections share; touched on the I/O thread only (the registry is thread-safe).
struct ConnectionContext {
  SessionRegistry* registry = nullptr;
  ConnectionTimeouts timeouts;
  MessageRateLimit rate_limit;  // --max-message-rate
  // SO_SNDBUF of each WebSocket (0: the kernel's autotuning, which lets a socket queue up to
  // net.ipv4.tcp_wmem's maximum, 4 MiB by default, for a client that stopped reading — and delays the
  // write-stall timeout until that is full). Linux doubles the value for its own bookkeeping.
  int socket_send_buffer_bytes = 256 * 1024;
  std::vector<std::weak_ptr<WebSocketConnection>> live;
  bool shutting_down = false;
};

// Takes over an upgrade request that passed the Host and Origin checks.
void start_websocket_connection(boost::asio::ip::tcp::socket socket,
                                boost::beast::http::request<boost::beast::http::string_body> request,
                                ConnectionContext& context);
// SIGINT / SIGTERM: every open connection gets bye{shutdown} and close 1001 (serving-spec.md §3.2).
void shut_down_websocket_connections(ConnectionContext& context);

}  // namespace fastar::serve
