// `fastar serve` (serving-spec.md §6): HTTP + WebSocket on one port (Boost.Beast), one engine
// thread, one encoder thread, one I/O thread. The library the CLI command and the tests run.
//
//   Server server(options, make_world_source_factory(3, 16));
//   uint16_t port = server.start();        // binds (port 0: an ephemeral one) and starts the threads
//   server.wait();                         // until SIGINT / SIGTERM (handle_signals) or stop()
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fastar/serve/chunk_source.h"
#include "fastar/serve/stream_session.h"
#include "fastar/serve/video_codec.h"
#include "fastar/serve/websocket_connection.h"

namespace fastar::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";           // serving-spec.md §6.6: loopback unless told otherwise
  uint16_t port = 8080;                     // 0: an ephemeral port (tests)
  int max_sessions = 2;
  std::vector<std::string> allowed_origins;
  ServeLimits limits;
  ConnectionTimeouts timeouts;
  MessageRateLimit message_rate;            // per connection: over it → error, then close 1008
  int socket_send_buffer_bytes = 256 * 1024;  // SO_SNDBUF per WebSocket (ConnectionContext); 0 = kernel autotuning
  int jpeg_quality = 90;
  MediaOptions media;                       // --codec (the sessions' default) and the H.264 settings
  bool handle_signals = false;              // SIGINT / SIGTERM → stop()
  std::string version = "0.1.0";
};

class Server {
 public:
  Server(ServerOptions options, std::unique_ptr<ChunkSourceFactory> source);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds and starts every thread; the port it listens on. fastar::Error when the address is taken
  // or invalid.
  uint16_t start();
  // Blocks until stop() is called or a handled signal arrives, and the server has stopped.
  void wait();
  // Every session gets bye{shutdown} and close 1001; then the threads end (at most ~2 s).
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace fastar::serve
