#include "fastar/serve/server.h"

#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <mutex>
#include <optional>
#include <thread>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include "fastar/core/error.h"
#include "fastar/serve/chunk_encoder.h"
#include "fastar/serve/engine_loop.h"
#include "fastar/serve/h264_encoder.h"
#include "fastar/serve/http_routes.h"
#include "fastar/serve/request_guard.h"
#include "fastar/serve/session_registry.h"

namespace fastar::serve {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

// One plain HTTP connection: the page, /healthz, /metrics; or the upgrade to /v1/stream after the
// Host and Origin checks (serving-spec.md §6.6).
class HttpConnection : public std::enable_shared_from_this<HttpConnection> {
 public:
  HttpConnection(tcp::socket socket, const RequestGuard& guard, const ServerFacts& facts, ConnectionContext& context)
      : stream_(std::move(socket)), guard_(guard), facts_(facts), context_(context) {}

  void read_request() {
    parser_.emplace();
    parser_->header_limit(8192);
    parser_->body_limit(4096);
    stream_.expires_after(std::chrono::seconds(10));
    http::async_read(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
  }

 private:
  void on_read(beast::error_code ec) {
    if (ec) {
      beast::error_code ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
      return;
    }
    http::request<http::string_body> request = parser_->release();
    const std::string host(request[http::field::host]);
    if (std::string why = guard_.check_host(host); !why.empty()) return reply(request, {403, "text/plain", why + "\n"});
    if (websocket::is_upgrade(request)) {
      if (request.target() != "/v1/stream") return reply(request, {404, "text/plain", "the WebSocket is at /v1/stream\n"});
      std::optional<std::string_view> origin;
      if (request.find(http::field::origin) != request.end()) {
        const auto value = request[http::field::origin];
        origin = std::string_view(value.data(), value.size());
      }
      if (std::string why = guard_.check_origin(host, origin); !why.empty()) return reply(request, {403, "text/plain", why + "\n"});
      stream_.expires_never();
      return start_websocket_connection(stream_.release_socket(), std::move(request), context_);
    }
    reply(request, route_http(std::string_view(request.method_string().data(), request.method_string().size()),
                              std::string_view(request.target().data(), request.target().size()), facts_));
  }

  void reply(const http::request<http::string_body>& request, HttpReply answer) {
    auto response = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(answer.status), request.version());
    response->set(http::field::server, "fastar");
    response->set(http::field::content_type, answer.content_type);
    response->set(http::field::cache_control, "no-store");
    response->set("X-Content-Type-Options", "nosniff");
    response->keep_alive(request.keep_alive() && answer.status == 200);
    if (request.method() != http::verb::head) response->body() = std::move(answer.body);
    response->prepare_payload();
    http::async_write(stream_, *response, [self = shared_from_this(), response](beast::error_code ec, size_t) {
      if (!ec && response->keep_alive()) return self->read_request();
      beast::error_code ignored;
      self->stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    });
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  const RequestGuard& guard_;
  const ServerFacts& facts_;
  ConnectionContext& context_;
};

}  // namespace

struct Server::Impl {
  ServerOptions options;
  std::unique_ptr<ChunkSourceFactory> source;
  SessionRegistry registry;
  std::unique_ptr<ChunkEncoder> encoder;
  std::unique_ptr<EngineLoop> engine;
  RequestGuard guard;
  ServerFacts facts;
  ConnectionContext context;
  net::io_context io{1};
  tcp::acceptor acceptor{io};
  std::optional<net::signal_set> signals;
  std::thread io_thread;

  std::mutex mutex;
  std::condition_variable changed;
  bool stop_requested = false, io_done = false, stopped = false;

  Impl(ServerOptions o, std::unique_ptr<ChunkSourceFactory> s)
      : options(std::move(o)), source(std::move(s)), registry(options.max_sessions, options.limits) {}

  void accept_next() {
    acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
      if (!ec) std::make_shared<HttpConnection>(std::move(socket), guard, facts, context)->read_request();
      accept_next();
    });
  }

  void request_stop() {
    std::lock_guard lock(mutex);
    stop_requested = true;
    changed.notify_all();
  }
};

Server::Server(ServerOptions options, std::unique_ptr<ChunkSourceFactory> source)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(source))) {
  FASTAR_CHECK(impl_->options.max_sessions >= 1, "fastar serve: --max-sessions must be at least 1");
  FASTAR_CHECK(impl_->options.limits.outbox_chunks >= 1, "fastar serve: the outbox must hold at least one chunk");
  FASTAR_CHECK(impl_->options.limits.outbox_bytes >= 0, "fastar serve: --outbox-bytes must be >= 0 (0: no byte cap)");
  MessageRateLimiter checked(impl_->options.message_rate);  // throws on a bad --max-message-rate, now
  const MediaOptions& media = impl_->options.media;
  FASTAR_CHECK(media.codec != VideoCodec::H264 || h264_available(),
               "fastar serve: --codec h264 needs FFmpeg's libavcodec, and this fastar was built with FASTAR_VIDEO=OFF; "
               "rebuild with -DFASTAR_VIDEO=ON (Debian: libavcodec-dev libswscale-dev) or use --codec jpeg");
  if (media.codec == VideoCodec::H264) {
    const SourceInfo& info = impl_->source->info();
    H264Encoder check(info.width, info.height, info.fps, media.h264);  // bad settings or no libx264 fail now, not per client
  }
}

Server::~Server() { stop(); }

uint16_t Server::start() {
  Impl& s = *impl_;
  beast::error_code ec;
  const net::ip::address address = net::ip::make_address(s.options.host == "localhost" ? "127.0.0.1" : s.options.host, ec);
  FASTAR_CHECK(!ec, "fastar serve: --host '" << s.options.host << "' is not an IP address (e.g. 127.0.0.1, or 0.0.0.0 for every interface)");
  const tcp::endpoint endpoint(address, s.options.port);
  s.acceptor.open(endpoint.protocol(), ec);
  if (!ec) s.acceptor.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) s.acceptor.bind(endpoint, ec);
  if (!ec) s.acceptor.listen(net::socket_base::max_listen_connections, ec);
  FASTAR_CHECK(!ec, "fastar serve: cannot listen on " << s.options.host << ":" << s.options.port << ": " << ec.message()
                                                       << " (another server on that port? try --port 0 for a free one)");
  const uint16_t port = s.acceptor.local_endpoint().port();
  s.guard = {s.options.host, port, s.options.allowed_origins};
  s.facts = {s.options.version, &s.source->info(), &s.registry};
  s.context.registry = &s.registry;
  s.context.timeouts = s.options.timeouts;
  s.context.rate_limit = s.options.message_rate;
  s.context.socket_send_buffer_bytes = s.options.socket_send_buffer_bytes;
  s.encoder = std::make_unique<ChunkEncoder>(s.options.jpeg_quality);
  s.engine = std::make_unique<EngineLoop>(s.registry, *s.source, *s.encoder, s.options.limits, s.options.media);
  s.engine->start();
  if (s.options.handle_signals) {
    s.signals.emplace(s.io, SIGINT, SIGTERM);
    s.signals->async_wait([&s](beast::error_code ec, int) {
      if (!ec) s.request_stop();
    });
  }
  s.accept_next();
  s.io_thread = std::thread([&s] {
    s.io.run();
    std::lock_guard lock(s.mutex);
    s.io_done = true;
    s.changed.notify_all();
  });
  return port;
}

void Server::wait() {
  {
    std::unique_lock lock(impl_->mutex);
    impl_->changed.wait(lock, [&] { return impl_->stop_requested || impl_->stopped; });
  }
  stop();
}

void Server::stop() {
  Impl& s = *impl_;
  {
    std::lock_guard lock(s.mutex);
    if (s.stopped || !s.io_thread.joinable()) {
      s.stopped = true;
      s.changed.notify_all();
      return;
    }
  }
  // 1. The I/O thread stops accepting and tells every session (bye{shutdown}, close 1001).
  net::post(s.io, [&s] {
    beast::error_code ignored;
    s.acceptor.close(ignored);
    if (s.signals) s.signals->cancel(ignored);
    shut_down_websocket_connections(s.context);
  });
  // 2. The engine finishes its chunk and drops every source; the encoder flushes what it holds.
  s.engine->stop();
  s.encoder.reset();
  // 3. The close handshakes get up to two seconds; idle keep-alive HTTP sockets do not hold us up.
  {
    std::unique_lock lock(s.mutex);
    s.changed.wait_for(lock, std::chrono::seconds(2), [&] { return s.io_done; });
  }
  s.io.stop();
  s.io_thread.join();
  std::lock_guard lock(s.mutex);
  s.stopped = true;
  s.changed.notify_all();
}

}  // namespace fastar::serve
