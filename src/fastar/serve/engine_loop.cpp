#include "fastar/serve/engine_loop.h"

#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "fastar/core/error.h"
#include "fastar/serve/server_messages.h"

namespace fastar::serve {

namespace {

double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

EngineLoop::EngineLoop(SessionRegistry& registry, const ChunkSourceFactory& factory, ChunkEncoder& encoder, ServeLimits limits)
    : registry_(registry), factory_(factory), encoder_(encoder), limits_(limits) {}

EngineLoop::~EngineLoop() { stop(); }

void EngineLoop::start() { thread_ = std::thread([this] { run(); }); }

void EngineLoop::stop() {
  stopping_ = true;
  registry_.stop();
  if (thread_.joinable()) thread_.join();
}

void EngineLoop::drop_released() {
  for (const auto& session : registry_.take_released()) session->source.reset();
}

void EngineLoop::run() {
  while (!stopping_) {
    drop_released();
    std::shared_ptr<StreamSession> session = registry_.wait_runnable(std::chrono::milliseconds(200));
    if (session) serve_turn(*session);
  }
  drop_released();
  for (const auto& session : registry_.sessions()) session->source.reset();
}

void EngineLoop::serve_turn(StreamSession& session) {
  const SourceInfo& info = factory_.info();
  StreamSession::Turn turn = session.begin_turn(info.chunk_frames);
  std::shared_ptr<SessionOutput> output = session.output();
  if (!output || (!turn.open && !session.source)) {
    session.close();
    session.end_turn(0);
    return;
  }
  try {
    if (turn.open) {
      try {
        session.source = factory_.open(turn.hello_prompt, turn.seed);
      } catch (const fastar::Error& e) {
        // The hello's prompt cannot start a stream: a fatal error for this client only (§6.2). Closed
        // here, not only when the I/O thread gets to it, so that no later turn finds it without a source.
        session.close();
        session.end_turn(0);
        output->close(1008, error_message("bad_prompt", e.what(), true));
        return;
      }
      output->send_text(ready_message(session.id(), info, limits_));
    }
    std::vector<std::string> texts_before;  // after the chunks already queued, before this one
    if (turn.reset_seed) {
      session.source->reset(*turn.reset_seed);
      texts_before.push_back(reset_applied_message(*turn.reset_seed));
    }
    std::optional<double> prompt_switch_ms;  // set when the pending prompt took effect
    if (turn.prompt) {
      const auto start = std::chrono::steady_clock::now();
      try {
        session.source->set_prompt(turn.prompt->text, turn.prompt->recache);
        session.applied_prompt_seq = turn.prompt->seq;
        session.count_prompt(true, turn.prompt->recache);
        prompt_switch_ms = ms_since(start);
      } catch (const fastar::Error& e) {
        // A word outside the vocabulary: the session runs on under its old prompt (§6.2).
        session.count_prompt(false, false);
        output->send_text(error_message("bad_prompt", e.what(), false));
      }
    }
    SourceChunk chunk = session.source->next_chunk(turn.actions);
    if (prompt_switch_ms)
      texts_before.push_back(prompt_applied_message(turn.prompt->seq, chunk.first_frame, *prompt_switch_ms, turn.prompt->recache));
    const int64_t frames = static_cast<int64_t>(chunk.frames.size());
    ChunkToEncode job{output, std::move(texts_before), std::move(chunk), info.fps, turn.action_seq, session.applied_prompt_seq, session.paused_ms()};
    // Counted before the encoder can deliver it, so that no ack outruns the count.
    session.end_turn(frames);
    encoder_.post(std::move(job));
  } catch (const std::exception& e) {
    // A failure inside one session's rollout closes that session (1011); the engine serves the rest.
    std::fprintf(stderr, "fastar serve: session %llu failed: %s\n", static_cast<unsigned long long>(session.id()), e.what());
    session.close();
    session.end_turn(0);
    output->close(1011, error_message("internal", e.what(), true));
  }
}

}  // namespace fastar::serve
