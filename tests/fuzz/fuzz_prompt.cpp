// libFuzzer target: a prompt through both text paths — the world model's word-level TextEncoder
// (models/world-small: tokenize, then encode what tokenizes) and umT5's (Wan's prompt cleaning, then
// the SentencePiece tokenizer with HF's added tokens, on the tiny tokenizer of tests/model/golden/umt5_tiny).
// The first input byte picks the umT5 text_len (1..64), the rest is the prompt.
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <memory>
#include <string>

#include "fastar/model/prompt_clean.h"
#include "fastar/model/text_encoder.h"
#include "fastar/model/umt5_tokenizer.h"
#include "fuzz_util.h"

namespace {

std::unique_ptr<fastar::TextEncoder> world_encoder;
std::unique_ptr<fastar::Umt5Tokenizer> umt5_tokenizer;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  try {
    world_encoder = std::make_unique<fastar::TextEncoder>(
        fastar::TextEncoder::load(FASTAR_SOURCE_DIR "/models/world-small"));
    umt5_tokenizer = std::make_unique<fastar::Umt5Tokenizer>(
        fastar::Umt5Tokenizer::load(FASTAR_SOURCE_DIR "/tests/model/golden/umt5_tiny/tokenizer"));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_prompt: cannot load the text encoders: %s\n", e.what());
    std::abort();
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int64_t text_len = 1 + data[0] % 64;
  const std::string prompt(reinterpret_cast<const char*>(data + 1), size - 1);

  fastar_fuzz::expect_only_fastar_errors("TextEncoder", [&] {
    const std::vector<int32_t> ids = world_encoder->tokenize(prompt);
    const fastar::Tensor out = world_encoder->encode(ids);
    if (out.numel() != world_encoder->config().text_len * world_encoder->config().dim) std::abort();
  });
  fastar_fuzz::expect_only_fastar_errors("clean_prompt_wan", [&] { (void)fastar::clean_prompt_wan(prompt); });
  fastar_fuzz::expect_only_fastar_errors("Umt5Tokenizer::encode", [&] {
    const fastar::Umt5Tokens tokens = umt5_tokenizer->encode(prompt, text_len);
    if (static_cast<int64_t>(tokens.ids.size()) != text_len || tokens.length < 1 || tokens.length > text_len)
      std::abort();
    for (const int32_t id : tokens.ids)
      if (id < 0 || id >= umt5_tokenizer->id_limit()) std::abort();
  });
  fastar_fuzz::expect_only_fastar_errors("Umt5Tokenizer::encode_clean", [&] {
    (void)umt5_tokenizer->encode_clean(prompt, text_len);
  });
  return 0;
}
