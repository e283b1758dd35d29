// The 32-byte header in front of every binary media message (serving-spec.md §6.2), little-endian:
// magic "FAR1", kind, flags, reserved, frame index, chunk index, action_seq, prompt_seq, pts_ms.
// The kind says what follows: 1 = one JPEG (every frame a key frame); 2 = one H.264 access unit in
// Annex-B (start codes; a key frame is an IDR with its SPS and PPS in band, see h264_encoder.h), whose
// timestamp is pts_ms. The page picks its decoder per message from the kind.
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
  bool key = true;           // flags bit 0: decodable on its own (JPEG: always; H.264: an IDR)
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
// Sets or clears the key flag of a message that starts with a header (the H.264 encoder decides it
// after the header is written).
void set_media_key_flag(bool key, std::string& message);
// The header of a media message; none if it is shorter than the header, the magic is wrong or the
// kind is unknown.
std::optional<MediaHeader> read_media_header(std::string_view message);

}  // namespace fastar::serve
