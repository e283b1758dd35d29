// A Beast WebSocket client, a one-shot HTTP GET and a world-source server for the server tests: every
// read has a deadline, so a broken server fails a test instead of hanging it.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <nlohmann/json.hpp>

#include "fastar/serve/media_header.h"
#include "fastar/serve/server.h"
#include "fastar/serve/world_chunk_source.h"

namespace fastar::testing {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

struct Received {
  bool ok = false;          // a message arrived
  bool text = false;
  std::string data;
  beast::error_code error;  // why not (closed: see close_code)
};

class ServeTestClient {
 public:
  // receive_buffer: a small socket buffer makes a client that never reads stall the server quickly.
  explicit ServeTestClient(uint16_t port, std::optional<std::string> origin = std::nullopt, int receive_buffer = 0) {
    tcp::socket& socket = beast::get_lowest_layer(ws_).socket();
    socket.open(tcp::v4());
    if (receive_buffer > 0) socket.set_option(net::socket_base::receive_buffer_size(receive_buffer));
    beast::get_lowest_layer(ws_).connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
    if (origin) {
      ws_.set_option(websocket::stream_base::decorator([o = *origin](websocket::request_type& req) { req.set(http::field::origin, o); }));
    }
    ws_.handshake(handshake_response_, "127.0.0.1:" + std::to_string(port), "/v1/stream");
  }

  // For a refused handshake: constructs nothing, returns the HTTP status.
  static int handshake_status(uint16_t port, const std::string& origin) {
    try {
      ServeTestClient client(port, origin);
      return 101;
    } catch (const beast::system_error&) {
      return 403;  // Beast reports a refused upgrade as an error; the test checks there was no upgrade
    }
  }

  void send(const std::string& text) {
    ws_.text(true);
    ws_.write(net::buffer(text));
  }
  void send_binary(const std::string& bytes) {
    ws_.binary(true);
    ws_.write(net::buffer(bytes));
  }
  void hello(const std::string& prompt, uint64_t seed = 0) {
    send(nlohmann::json{{"type", "hello"}, {"v", 1}, {"prompt", prompt}, {"seed", seed}}.dump());
  }

  Received read(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    Received r;
    beast::flat_buffer buffer;
    bool done = false;
    beast::get_lowest_layer(ws_).expires_after(timeout);
    ws_.async_read(buffer, [&](beast::error_code ec, size_t) {
      done = true;
      r.error = ec;
    });
    io_.restart();
    io_.run();
    r.ok = done && !r.error;
    if (r.ok) {
      r.text = ws_.got_text();
      r.data = beast::buffers_to_string(buffer.data());
    }
    return r;
  }

  // The next text message of `type`, skipping media and other types; nullopt on close or timeout.
  std::optional<nlohmann::json> read_json(const std::string& type, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      Received r = read(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()));
      if (!r.ok) return std::nullopt;
      if (!r.text) continue;
      nlohmann::json j = nlohmann::json::parse(r.data);
      if (j["type"] == type) return j;
    }
    return std::nullopt;
  }

  // The next media frame's header and JPEG; nullopt on close or timeout.
  std::optional<std::pair<serve::MediaHeader, std::string>> read_frame(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      Received r = read(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()));
      if (!r.ok) return std::nullopt;
      if (r.text) continue;
      auto header = serve::read_media_header(r.data);
      if (!header) return std::nullopt;
      return std::make_pair(*header, r.data.substr(serve::kMediaHeaderBytes));
    }
    return std::nullopt;
  }

  // Reads until the server closes; the close code (0 = no close within the timeout).
  int wait_close(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      Received r = read(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()));
      if (r.error == websocket::error::closed) return ws_.reason().code;
      if (!r.ok) return -1;  // reset or timeout without a close frame
    }
    return 0;
  }

 private:
  net::io_context io_;
  websocket::stream<beast::tcp_stream> ws_{io_};
  websocket::response_type handshake_response_;
};

// GET path → (status, body).
inline std::pair<int, std::string> http_get(uint16_t port, const std::string& path, const std::string& host = "") {
  net::io_context io;
  beast::tcp_stream stream(io);
  stream.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  http::request<http::empty_body> request(http::verb::get, path, 11);
  request.set(http::field::host, host.empty() ? "127.0.0.1:" + std::to_string(port) : host);
  http::write(stream, request);
  beast::flat_buffer buffer;
  http::response<http::string_body> response;
  http::read(stream, buffer, response);
  return {static_cast<int>(response.result_int()), response.body()};
}

// A Server with the world source (3 frames per chunk, 16 fps) on an ephemeral loopback port.
struct RunningServer {
  explicit RunningServer(serve::ServerOptions options = {}) {
    options.port = 0;
    server = std::make_unique<serve::Server>(options, serve::make_world_source_factory(3, 16));
    port = server->start();
  }
  std::unique_ptr<serve::Server> server;
  uint16_t port = 0;
};

// Without a page to ack frames, the tests turn the lead cap off: only the outbox bounds a session.
inline serve::ServerOptions no_lead() {
  serve::ServerOptions options;
  options.limits.lead_frames = 0;
  return options;
}

// One session's entry in GET /metrics (null when it is not open).
inline nlohmann::json session_metrics(uint16_t port, uint64_t session_id) {
  const nlohmann::json metrics = nlohmann::json::parse(http_get(port, "/metrics").second);
  for (const auto& session : metrics["sessions"])
    if (session["session"] == session_id) return session;
  return nullptr;
}

}  // namespace fastar::testing
