// The 32-byte header in front of every binary media message (serving-spec.md §6.2), little-endian:
// magic "FAR1", kind, flags, reserved, frame index, chunk index, action_seq, prompt_seq, pts_ms.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace fastar::serve {

constexpr size_t kMediaHeaderBytes = 32;

enum class MediaKind : uint8_t { Jpeg = 1, H264 = 2 };

struct MediaHeader {
  MediaKind kind = MediaKind::Jpeg;
  bool key = true;           // flags bit 0
  bool chunk_start = false;  // flags bit 1
  bool chunk_end = false;    // flags bit 2
  uint64_t frame_index = 0;
  uint32_t chunk_index = 0;
  uint32_t action_seq = 0;   // the action message that conditioned the frame's chunk
  uint32_t prompt_seq = 0;   // the prompt message in effect
  uint32_t pts_ms = 0;       // frame_index / fps, in milliseconds
};

// Appends the 32 header bytes to `out`.
void append_media_header(const MediaHeader& header, std::string& out);
// The header of a media message; none if it is shorter than the header or the magic is wrong.
std::optional<MediaHeader> read_media_header(std::string_view message);

}  // namespace fastar::serve
