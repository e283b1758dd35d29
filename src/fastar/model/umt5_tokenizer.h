// The umT5 tokenizer as Wan calls it (pipeline-spec.md §5): Wan's prompt cleaning (prompt_clean.h),
// then SentencePiece (Debian's libsentencepiece) with Hugging Face's conventions, so that the ids equal
// transformers' AutoTokenizer (T5TokenizerFast) called with
//   padding='max_length', truncation=True, max_length=text_len, add_special_tokens=True:
//
//   1. added tokens ("</s>", "<pad>", "<unk>", "<extra_id_N>") written literally in the prompt are split
//      out first (leftmost, longest) and become their ids, as HF matches them on the raw text;
//   2. each piece of text between them is encoded by SentencePiece (its own NFKC-style normalizer,
//      whitespace handling and "▁" prefix equal HF's Precompiled + Strip + Metaspace(prepend "always"));
//   3. if the model has byte fallback but HF's converted tokenizer does not (HF's T5 converter sets
//      byte_fallback=False, §5.3), each maximal run of byte pieces becomes one unk id, which is what HF's
//      Unigram model emits for a run of unknown characters; a tokenizer.json saying "byte_fallback": true
//      keeps the bytes;
//   4. truncate to text_len − 1 ids, append </s> (eos id), pad with the pad id to text_len.
//
// The added tokens and their ids come from tokenizer.json ("added_tokens") or tokenizer_config.json
// ("added_tokens_decoder"); without either, the model's control/unknown pieces plus `extra_ids`
// (tokenizer_config.json) "<extra_id_N>" tokens numbered as HF does (N = 0 is the highest id).
// HF's lstrip/rstrip flags of added tokens change no ids here: SentencePiece and HF's normalizer both
// drop the whitespace next to them.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace fastar {

struct Umt5Tokens {
  std::vector<int32_t> ids;  // [text_len]: the real tokens, the last of them </s>, then padding
  int64_t length = 0;        // real tokens, </s> included (= the number of attention-mask ones)
};

struct Umt5AddedToken {
  std::string content;
  int32_t id = 0;
};

class Umt5Tokenizer {
 public:
  // path: a folder holding spiece.model (a diffusers `tokenizer/` folder, Wan's `google/umt5-xxl/`)
  // and optionally tokenizer.json / tokenizer_config.json, or a SentencePiece .model file.
  static Umt5Tokenizer load(const std::string& path);

  Umt5Tokenizer(Umt5Tokenizer&&) noexcept;
  Umt5Tokenizer& operator=(Umt5Tokenizer&&) noexcept;
  ~Umt5Tokenizer();

  // Cleans the prompt (clean_prompt_wan) and tokenizes it. text_len >= 1.
  Umt5Tokens encode(const std::string& prompt, int64_t text_len) const;
  // Tokenizes an already-cleaned prompt.
  Umt5Tokens encode_clean(const std::string& clean_text, int64_t text_len) const;

  // One more than the largest id this tokenizer can emit (SentencePiece pieces and added tokens).
  int64_t id_limit() const { return id_limit_; }
  int32_t eos_id() const { return eos_id_; }
  int32_t pad_id() const { return pad_id_; }
  int32_t unk_id() const { return unk_id_; }
  // Whether byte pieces are merged into unk ids (step 3 above).
  bool merges_byte_runs() const { return merges_byte_runs_; }
  const std::vector<Umt5AddedToken>& added_tokens() const { return added_tokens_; }
  // The .model file read (for messages).
  const std::string& model_path() const { return model_path_; }

 private:
  Umt5Tokenizer() = default;
  void append_segment(const std::string& text, std::vector<int32_t>& ids) const;

  std::unique_ptr<sentencepiece::SentencePieceProcessor> processor_;
  std::string model_path_;
  std::vector<Umt5AddedToken> added_tokens_;  // longest content first
  std::array<bool, 256> starts_added_token_{};  // first bytes of the added tokens
  int64_t id_limit_ = 0;
  int32_t eos_id_ = 1, pad_id_ = 0, unk_id_ = 2;
  bool merges_byte_runs_ = false;
};

}  // namespace fastar
