#include "fastar/serve/server_messages.h"

#include <nlohmann/json.hpp>

#include "fastar/serve/client_message.h"
#include "fastar/serve/stream_session.h"

namespace fastar::serve {

using nlohmann::json;

namespace {

// −1 (not measured) stays out of the message: the page shows "–".
void put_measured(json& j, const char* key, double value) {
  if (value >= 0) j[key] = value;
}

}  // namespace

std::string ready_message(uint64_t session_id, const SourceInfo& info, const ServeLimits& limits, VideoCodec video,
                          const std::string& codec) {
  json j = {{"type", "ready"},        {"session", session_id},         {"width", info.width},
            {"height", info.height},  {"fps", info.fps},               {"chunk_frames", info.chunk_frames},
            {"video", video_codec_name(video)}, {"codec", codec},               {"source", info.kind},
            {"model", info.name},     {"device", info.device}};
  j["limits"] = {{"max_message_bytes", kMaxClientMessageBytes},
                 {"max_prompt_bytes", kMaxPromptBytes},
                 {"outbox_chunks", limits.outbox_chunks},
                 {"outbox_bytes", limits.outbox_bytes},
                 {"lead_frames", limits.lead_frames}};
  return j.dump();
}

std::string chunk_message(const SourceChunk& chunk, uint32_t action_seq, uint32_t prompt_seq, double paused_ms) {
  json j = {{"type", "chunk"},
            {"index", chunk.index},
            {"first_frame", chunk.first_frame},
            {"frames", chunk.frames.size()},
            {"gen_ms", chunk.gen_ms},
            {"fps", chunk.gen_ms > 0 ? 1000.0 * static_cast<double>(chunk.frames.size()) / chunk.gen_ms : 0.0},
            {"kv_bytes", chunk.stats.bytes},
            {"device_mem_bytes", chunk.device_mem_bytes},
            {"action_seq", action_seq},
            {"prompt_seq", prompt_seq},
            {"dropped", 0},
            {"paused_ms", paused_ms}};
  put_measured(j, "kv_density", chunk.stats.kv_density);
  put_measured(j, "density", chunk.stats.density);
  put_measured(j, "recall", chunk.stats.recall);
  put_measured(j, "cross_density", chunk.stats.cross_density);
  return j.dump();
}

std::string prompt_applied_message(uint32_t seq, int64_t at_frame, double recache_ms, bool recache) {
  return json{{"type", "prompt_applied"}, {"seq", seq}, {"at_frame", at_frame}, {"recache_ms", recache_ms}, {"recache", recache}}
      .dump();
}

std::string video_changed_message(VideoCodec video, const std::string& codec, int64_t at_frame) {
  return json{{"type", "video_changed"}, {"video", video_codec_name(video)}, {"codec", codec}, {"at_frame", at_frame}}.dump();
}

std::string reset_applied_message(uint64_t seed) { return json{{"type", "reset_applied"}, {"seed", seed}}.dump(); }

std::string error_message(const std::string& code, const std::string& message, bool fatal) {
  // Messages may quote the client's own words: dump() with replacement keeps the JSON valid UTF-8.
  return json{{"type", "error"}, {"code", code}, {"message", message}, {"fatal", fatal}}.dump(-1, ' ', false,
                                                                                               json::error_handler_t::replace);
}

std::string bye_message(const std::string& reason) { return json{{"type", "bye"}, {"reason", reason}}.dump(); }

}  // namespace fastar::serve
