// The world's prompt vocabulary and word tokenizer (docs/world.md).
//
// A fixed, ordered word list: id 0 is "<pad>", id 1 is "<unk>"; neither may appear in a prompt, and
// a word outside the list is an error (never mapped to <unk>). configs/world/vocab.json holds the
// same list as a JSON array in id order (`fastar world vocab` regenerates it).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fastar::world {

constexpr int32_t kPadId = 0;
constexpr int32_t kUnkId = 1;
// Prompts longer than this many words (including ".") are rejected.
constexpr int kMaxPromptTokens = 48;

// All words, in id order.
const std::vector<std::string>& vocabulary();
// The vocabulary as a compact JSON list, e.g. ["<pad>","<unk>",".","a",...].
std::string vocabulary_json();
// The id of `word`, or -1 when it is not in the vocabulary.
int32_t word_id(const std::string& word);

// Splits a prompt into words: ASCII letters are lower-cased, "." is always a word of its own
// (so "bounces." is "bounces" "."), anything else but letters, "." and whitespace is an error.
std::vector<std::string> split_words(const std::string& prompt);
// Word ids of a prompt (no padding). Throws fastar::Error naming the first unknown word and its
// position, or when the prompt has more than kMaxPromptTokens words or none.
std::vector<int32_t> tokenize(const std::string& prompt);
// tokenize() padded with kPadId to exactly kMaxPromptTokens ids.
std::vector<int32_t> tokenize_padded(const std::string& prompt);
// The words of `ids` joined by single spaces; padding ids are skipped, other bad ids are an error.
std::string detokenize(const std::vector<int32_t>& ids);

}  // namespace fastar::world
