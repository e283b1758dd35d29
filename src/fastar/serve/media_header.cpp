#include "fastar/serve/media_header.h"

#include "fastar/core/error.h"

namespace fastar::serve {

namespace {

template <typename T>
void put_le(std::string& out, T value) {
  for (size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<char>((static_cast<uint64_t>(value) >> (8 * i)) & 0xff));
}

template <typename T>
T get_le(std::string_view in, size_t at) {
  uint64_t value = 0;
  for (size_t i = 0; i < sizeof(T); ++i) value |= static_cast<uint64_t>(static_cast<uint8_t>(in[at + i])) << (8 * i);
  return static_cast<T>(value);
}

}  // namespace

void append_media_header(const MediaHeader& header, std::string& out) {
  out.append("FAR1", 4);
  put_le<uint8_t>(out, static_cast<uint8_t>(header.kind));
  put_le<uint8_t>(out, static_cast<uint8_t>((header.key ? 1 : 0) | (header.chunk_start ? 2 : 0) | (header.chunk_end ? 4 : 0)));
  put_le<uint16_t>(out, 0);
  put_le<uint64_t>(out, header.frame_index);
  put_le<uint32_t>(out, header.chunk_index);
  put_le<uint32_t>(out, header.action_seq);
  put_le<uint32_t>(out, header.prompt_seq);
  put_le<uint32_t>(out, header.pts_ms);
}

void set_media_key_flag(bool key, std::string& message) {
  FASTAR_CHECK(message.size() >= kMediaHeaderBytes, "set_media_key_flag: a message of " << message.size()
                                                        << " bytes has no media header");
  message[5] = static_cast<char>(key ? (message[5] | 1) : (message[5] & ~1));
}

std::optional<MediaHeader> read_media_header(std::string_view message) {
  if (message.size() < kMediaHeaderBytes || message.substr(0, 4) != "FAR1") return std::nullopt;
  MediaHeader header;
  const uint8_t kind = get_le<uint8_t>(message, 4);
  if (kind != static_cast<uint8_t>(MediaKind::Jpeg) && kind != static_cast<uint8_t>(MediaKind::H264)) return std::nullopt;
  header.kind = static_cast<MediaKind>(kind);
  const uint8_t flags = get_le<uint8_t>(message, 5);
  header.key = flags & 1;
  header.chunk_start = flags & 2;
  header.chunk_end = flags & 4;
  header.frame_index = get_le<uint64_t>(message, 8);
  header.chunk_index = get_le<uint32_t>(message, 16);
  header.action_seq = get_le<uint32_t>(message, 20);
  header.prompt_seq = get_le<uint32_t>(message, 24);
  header.pts_ms = get_le<uint32_t>(message, 28);
  return header;
}

}  // namespace fastar::serve
