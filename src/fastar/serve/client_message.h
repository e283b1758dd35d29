// Client → server messages (serving-spec.md §6.2), parsed and schema-checked by hand: every type's
// known keys, their JSON types and ranges. Nothing in a message names a file (§6.6).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "fastar/serve/video_codec.h"

namespace fastar::serve {

// The cap on one incoming message (serving-spec.md §6.2, the Beast read_message_max).
constexpr size_t kMaxClientMessageBytes = 4096;
// The cap on a prompt's text (serving-spec.md §6.5).
constexpr size_t kMaxPromptBytes = 512;

struct HelloMessage {
  std::string prompt;
  uint64_t seed = 0;
  std::optional<VideoCodec> video;  // "jpeg" | "h264"; none: the server's --codec
};
// Latest-state: the one action the held keys mean (. U D L R).
struct ActionMessage {
  uint32_t seq = 0;
  char action = '.';
};
struct PromptMessage {
  uint32_t seq = 0;
  std::string text;
  bool recache = true;
};
struct PauseMessage {
  bool paused = true;
};
struct ResetMessage {
  std::optional<uint64_t> seed;  // none: the server picks the next one
};
// Flow control: the number of frames the page has drawn or skipped since it connected.
struct AckMessage {
  int64_t frames = 0;
};
struct ByeMessage {};
// `set_video`: switch the session's codec from the next chunk on (the page asks for "jpeg" when its
// browser cannot decode the server's H.264).
struct VideoMessage {
  VideoCodec video = VideoCodec::Jpeg;
};

using ClientMessage =
    std::variant<HelloMessage, ActionMessage, PromptMessage, PauseMessage, ResetMessage, AckMessage, ByeMessage, VideoMessage>;

// What a message that fails the schema gets: the reason, sent back in a fatal `error` before close
// 1008 (serving-spec.md §6.2).
struct ParseFailure {
  std::string message;
};

// Parses one text message; never throws.
std::variant<ClientMessage, ParseFailure> parse_client_message(std::string_view text);

// The message's type name, as on the wire ("hello", "action", ...).
const char* message_type_name(const ClientMessage& message);

}  // namespace fastar::serve
