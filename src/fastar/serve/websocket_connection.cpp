#include "fastar/serve/websocket_connection.h"

#include <chrono>
#include <cstdio>
#include <deque>
#include <string>
#include <variant>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include "fastar/serve/client_message.h"
#include "fastar/serve/server_messages.h"

namespace fastar::serve {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

std::chrono::milliseconds seconds(double s) { return std::chrono::milliseconds(static_cast<int64_t>(s * 1000)); }

}  // namespace

class WebSocketConnection final : public SessionOutput, public std::enable_shared_from_this<WebSocketConnection> {
 public:
  WebSocketConnection(net::ip::tcp::socket socket, ConnectionContext& context)
      : ws_(std::move(socket)), context_(context), watchdog_(ws_.get_executor()), limiter_(context.rate_limit) {}

  void run(http::request<http::string_body> request) {
    if (context_.socket_send_buffer_bytes > 0) {
      beast::error_code ignored;  // a refused size leaves the kernel's default: nothing worse than before
      beast::get_lowest_layer(ws_).socket().set_option(net::socket_base::send_buffer_size(context_.socket_send_buffer_bytes), ignored);
    }
    ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
    ws_.set_option(websocket::stream_base::decorator([](websocket::response_type& res) { res.set(http::field::server, "fastar"); }));
    ws_.read_message_max(kMaxClientMessageBytes);  // more: Beast fails the read and closes 1009 (serving-spec.md §6.2)
    ws_.auto_fragment(false);
    ws_.async_accept(request, [self = shared_from_this()](beast::error_code ec) { self->on_accept(ec); });
  }

  // ---- SessionOutput: any thread → the I/O thread ----
  void send_text(std::string text) override {
    net::post(ws_.get_executor(), [self = shared_from_this(), text = std::move(text)]() mutable {
      self->enqueue({std::move(text), false, false, false, 0});
    });
  }
  void send_chunk(EncodedChunk chunk) override {
    net::post(ws_.get_executor(), [self = shared_from_this(), chunk = std::move(chunk)]() mutable {
      for (std::string& media : chunk.media) self->enqueue({std::move(media), true, false, false, 0});
      self->enqueue({std::move(chunk.summary), false, true, false, 0});
    });
  }
  void close(uint16_t code, std::string last_text) override {
    net::post(ws_.get_executor(), [self = shared_from_this(), code, last_text = std::move(last_text)]() mutable {
      self->begin_close(code, std::move(last_text));
    });
  }

  // ---- the I/O thread ----
  void shut_down() { begin_close(1001, bye_message("shutdown")); }

 private:
  struct Outgoing {
    std::string data;
    bool binary = false;
    bool ends_chunk = false;  // the `chunk` summary: its chunk has left the outbox when written
    bool is_close = false;
    uint16_t code = 0;
  };

  void on_accept(beast::error_code ec) {
    if (ec) return finish();
    last_message_ = opened_ = Clock::now();
    context_.live.push_back(weak_from_this());
    if (context_.shutting_down) return begin_close(1001, bye_message("shutdown"));
    session_ = context_.registry->admit(weak_from_this());
    if (!session_) {
      // --max-sessions reached: try again later (serving-spec.md §6.2, close 1013).
      return begin_close(1013, error_message("busy", "the server is at --max-sessions; try again later", true));
    }
    read_next();
    arm_watchdog();
  }

  void read_next() {
    ws_.async_read(in_, [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec) return finish();  // closed by the client, a 1009 from the size cap, or a dead socket
    if (closing_) {
      in_.consume(in_.size());
      return read_next();  // drain until the close handshake ends
    }
    last_message_ = Clock::now();
    switch (limiter_.admit(last_message_)) {
      case MessageRateLimiter::Verdict::admit:
        break;
      case MessageRateLimiter::Verdict::warn:  // refused, and said so once per episode (non-fatal)
        enqueue({error_message("rate_limited", rate_text("this message was ignored; slow down"), false), false, false, false, 0});
        [[fallthrough]];
      case MessageRateLimiter::Verdict::refuse:
        in_.consume(in_.size());
        return read_next();
      case MessageRateLimiter::Verdict::close:
        in_.consume(in_.size());
        return begin_close(1008, error_message("rate_limited", rate_text("the client kept going; closing"), true));
    }
    if (!ws_.got_text()) return fail("binary messages from the client are refused");
    const std::string text = beast::buffers_to_string(in_.data());
    in_.consume(in_.size());
    auto parsed = parse_client_message(text);
    if (auto* failure = std::get_if<ParseFailure>(&parsed)) return fail(failure->message);
    const ClientMessage& message = std::get<ClientMessage>(parsed);
    const bool is_hello = std::holds_alternative<HelloMessage>(message);
    if (is_hello == hello_seen_)
      return fail(is_hello ? "a second 'hello' on one connection" : std::string("'") + message_type_name(message) +
                                                                        "' before 'hello' (the first message must be hello)");
    if (!dispatch(message)) return;
    read_next();
  }

  // false: the connection is closing.
  bool dispatch(const ClientMessage& message) {
    if (auto* hello = std::get_if<HelloMessage>(&message)) {
      hello_seen_ = true;
      session_->start(*hello);
    } else if (auto* action = std::get_if<ActionMessage>(&message)) {
      session_->set_action(*action);
    } else if (auto* prompt = std::get_if<PromptMessage>(&message)) {
      session_->set_prompt(*prompt);
    } else if (auto* pause = std::get_if<PauseMessage>(&message)) {
      session_->set_paused(pause->paused);
    } else if (auto* reset = std::get_if<ResetMessage>(&message)) {
      session_->request_reset(reset->seed);
    } else if (auto* ack = std::get_if<AckMessage>(&message)) {
      session_->acknowledge(ack->frames);
    } else if (auto* video = std::get_if<VideoMessage>(&message)) {
      session_->request_video(video->video);
    } else {
      begin_close(1000, "");
      return false;
    }
    return true;
  }

  // A malformed message closes only this session: error{fatal}, then 1008 (serving-spec.md §6.6).
  void fail(const std::string& why) { begin_close(1008, error_message("malformed", why, true)); }

  std::string rate_text(const char* what) const {
    char text[160];
    std::snprintf(text, sizeof text, "more than %.0f messages/s (--max-message-rate): %s", context_.rate_limit.per_second, what);
    return text;
  }

  void begin_close(uint16_t code, std::string last_text) {
    if (closing_ || closed_) return;
    closing_ = true;
    if (session_) context_.registry->release(session_);  // frees the place and stops the engine at once
    // Unsent media is dropped; what is being written finishes first (Beast allows one write at a time).
    if (writing_) outbox_.erase(outbox_.begin() + 1, outbox_.end());
    else outbox_.clear();
    if (!last_text.empty()) outbox_.push_back({std::move(last_text), false, false, false, 0});
    outbox_.push_back({"", false, false, true, code});
    recount_outbox_bytes();
    if (!writing_) write_next();
  }

  void enqueue(Outgoing message) {
    if (closing_ || closed_) return;
    add_outbox_bytes(static_cast<int64_t>(message.data.size()));
    outbox_.push_back(std::move(message));
    if (!writing_) write_next();
  }

  void write_next() {
    if (outbox_.empty() || closed_) {
      writing_ = false;
      return;
    }
    writing_ = true;
    write_started_ = Clock::now();
    Outgoing& next = outbox_.front();
    if (next.is_close) {
      ws_.async_close(websocket::close_reason(next.code), [self = shared_from_this()](beast::error_code) { self->finish(); });
      return;
    }
    ws_.binary(next.binary);
    ws_.async_write(net::buffer(next.data), [self = shared_from_this()](beast::error_code ec, size_t) { self->on_write(ec); });
  }

  void on_write(beast::error_code ec) {
    if (ec) return finish();
    const bool ends_chunk = outbox_.front().ends_chunk;
    add_outbox_bytes(-static_cast<int64_t>(outbox_.front().data.size()));
    outbox_.pop_front();
    if (ends_chunk && session_) session_->chunk_written();
    write_next();
  }

  // The bytes waiting for the socket, reported to the session (its byte cap, ServeLimits::outbox_bytes).
  void add_outbox_bytes(int64_t delta) {
    outbox_bytes_ += delta;
    if (session_) session_->outbox_bytes_changed(delta);
  }
  void recount_outbox_bytes() {
    int64_t bytes = 0;
    for (const Outgoing& o : outbox_) bytes += static_cast<int64_t>(o.data.size());
    add_outbox_bytes(bytes - outbox_bytes_);
  }

  // Timeouts, checked four times a second: hello, idle (client messages, not pings), write stall.
  void arm_watchdog() {
    watchdog_.expires_after(std::chrono::milliseconds(250));
    watchdog_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (!ec && !self->closed_) self->check_timeouts();
    });
  }

  void check_timeouts() {
    const auto now = Clock::now();
    const ConnectionTimeouts& t = context_.timeouts;
    if (writing_ && now - write_started_ > seconds(t.stall_s)) {
      // The client stopped reading: bye{stalled} cannot pass a stuck socket, so the socket goes.
      std::fprintf(stderr, "fastar serve: session %llu stalled (no write progress for %.1f s); closing it\n",
                   static_cast<unsigned long long>(session_ ? session_->id() : 0), t.stall_s);
      beast::error_code ignored;
      beast::get_lowest_layer(ws_).socket().close(ignored);
      return finish();
    }
    if (!closing_ && !hello_seen_ && now - opened_ > seconds(t.hello_s))
      begin_close(1008, error_message("no_hello", "no 'hello' within --hello-timeout", true));
    else if (!closing_ && now - last_message_ > seconds(t.idle_s))
      begin_close(1000, bye_message("idle"));
    arm_watchdog();
  }

  void finish() {
    if (closed_) return;
    closed_ = true;
    if (session_) context_.registry->release(session_);
    watchdog_.cancel();
    outbox_.clear();
    writing_ = false;
  }

  websocket::stream<beast::tcp_stream> ws_;
  ConnectionContext& context_;
  net::steady_timer watchdog_;
  beast::flat_buffer in_;
  std::shared_ptr<StreamSession> session_;
  std::deque<Outgoing> outbox_;
  int64_t outbox_bytes_ = 0;
  MessageRateLimiter limiter_;
  bool writing_ = false, closing_ = false, closed_ = false, hello_seen_ = false;
  Clock::time_point opened_{}, last_message_{}, write_started_{};
};

void start_websocket_connection(net::ip::tcp::socket socket, http::request<http::string_body> request, ConnectionContext& context) {
  std::erase_if(context.live, [](const auto& weak) { return weak.expired(); });
  std::make_shared<WebSocketConnection>(std::move(socket), context)->run(std::move(request));
}

void shut_down_websocket_connections(ConnectionContext& context) {
  context.shutting_down = true;
  for (const auto& weak : context.live)
    if (auto connection = weak.lock()) connection->shut_down();
}

}  // namespace fastar::serve
