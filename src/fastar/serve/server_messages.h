// Server → client text messages (serving-spec.md §6.2): each builder returns one JSON text.
#pragma once

#include <cstdint>
#include <string>

#include "fastar/serve/chunk_source.h"
#include "fastar/serve/video_codec.h"

namespace fastar::serve {

struct ServeLimits;  // stream_session.h

// video: the session's codec; codec: its WebCodecs string ("jpeg" for JPEG, e.g. "avc1.42C00A").
std::string ready_message(uint64_t session_id, const SourceInfo& info, const ServeLimits& limits, VideoCodec video,
                          const std::string& codec);
// The session's codec changed (set_video): frames from `at_frame` on come in it.
std::string video_changed_message(VideoCodec video, const std::string& codec, int64_t at_frame);
// After a chunk's media: its index, frames, timing and the policy's statistics.
std::string chunk_message(const SourceChunk& chunk, uint32_t action_seq, uint32_t prompt_seq, double paused_ms);
std::string prompt_applied_message(uint32_t seq, int64_t at_frame, double recache_ms, bool recache);
std::string reset_applied_message(uint64_t seed);
// code: a short machine name ("bad_prompt", "malformed", "busy", ...); fatal: a close follows.
std::string error_message(const std::string& code, const std::string& message, bool fatal);
// reason: "idle" | "limit" | "shutdown" | "stalled".
std::string bye_message(const std::string& reason);

}  // namespace fastar::serve
