// Where a session's messages go (serving-spec.md §6.3): the WebSocket connection implements it; the
// engine and the encoder call it from their own threads and it hands everything to the I/O thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fastar::serve {

// One chunk ready to send: its binary media messages (header + JPEG) and the `chunk` summary.
struct EncodedChunk {
  std::vector<std::string> media;
  std::string summary;
};

class SessionOutput {
 public:
  virtual ~SessionOutput() = default;
  // Thread-safe; queued behind what was sent before.
  virtual void send_text(std::string text) = 0;
  // Thread-safe; the session's chunk_written() is called once the chunk's last message is written.
  virtual void send_chunk(EncodedChunk chunk) = 0;
  // Thread-safe: sends `last_text` (if not empty), then closes with `code` (RFC 6455).
  virtual void close(uint16_t code, std::string last_text) = 0;
};

}  // namespace fastar::serve
