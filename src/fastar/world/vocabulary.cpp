#include "fastar/world/vocabulary.h"

#include <cctype>

#include <nlohmann/json.hpp>

#include "fastar/core/error.h"

namespace fastar::world {

const std::vector<std::string>& vocabulary() {
  // Append only: ids are baked into datasets and trained text encoders.
  static const std::vector<std::string> words = {
      "<pad>", "<unk>", ".", "a",
      // sizes
      "small", "big",
      // colours
      "red", "green", "blue", "yellow", "cyan", "magenta", "white", "orange",
      // shapes
      "circle", "square", "triangle", "cross",
      // motions
      "bounces", "drifts", "orbits", "stays",
      // directions
      "left", "right", "up", "down",
      // speeds
      "slowly", "quickly",
      // entering and leaving
      "enters", "and", "then", "leaves",
      // background
      "background", "pans", "plain", "stripes", "checks", "dots", "grid", "clouds",
  };
  return words;
}

std::string vocabulary_json() { return nlohmann::json(vocabulary()).dump(); }

int32_t word_id(const std::string& word) {
  const std::vector<std::string>& words = vocabulary();
  for (size_t i = 0; i < words.size(); ++i)
    if (words[i] == word) return static_cast<int32_t>(i);
  return -1;
}

std::vector<std::string> split_words(const std::string& prompt) {
  std::vector<std::string> words;
  std::string current;
  auto flush = [&] {
    if (!current.empty()) words.push_back(std::move(current));
    current.clear();
  };
  for (size_t i = 0; i < prompt.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(prompt[i]);
    if (std::isspace(c)) {
      flush();
    } else if (c == '.') {
      flush();
      words.emplace_back(".");
    } else if (std::isalpha(c)) {
      current.push_back(static_cast<char>(std::tolower(c)));
    } else {
      FASTAR_FAIL("prompt: character '" << prompt[i] << "' at offset " << i
                                        << " is not allowed; prompts are words of letters separated by spaces, "
                                           "with '.' ending each phrase (see docs/world.md)");
    }
  }
  flush();
  return words;
}

std::vector<int32_t> tokenize(const std::string& prompt) {
  const std::vector<std::string> words = split_words(prompt);
  FASTAR_CHECK(!words.empty(), "prompt: empty; describe at least one object, e.g. \"a red circle bounces .\"");
  FASTAR_CHECK(static_cast<int>(words.size()) <= kMaxPromptTokens,
               "prompt: " << words.size() << " words, more than the limit of " << kMaxPromptTokens
                          << " (\".\" counts as a word); use fewer objects or modifiers");
  std::vector<int32_t> ids;
  ids.reserve(words.size());
  for (size_t i = 0; i < words.size(); ++i) {
    const int32_t id = word_id(words[i]);
    FASTAR_CHECK(id > kUnkId, "prompt: unknown word '" << words[i] << "' (word " << i + 1
                                                       << "); the vocabulary is configs/world/vocab.json");
    ids.push_back(id);
  }
  return ids;
}

std::vector<int32_t> tokenize_padded(const std::string& prompt) {
  std::vector<int32_t> ids = tokenize(prompt);
  ids.resize(kMaxPromptTokens, kPadId);
  return ids;
}

std::string detokenize(const std::vector<int32_t>& ids) {
  const std::vector<std::string>& words = vocabulary();
  std::string text;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] == kPadId) continue;
    FASTAR_CHECK(ids[i] > kUnkId && ids[i] < static_cast<int32_t>(words.size()),
                 "detokenize: id " << ids[i] << " at position " << i << " is not a word id (2.." << words.size() - 1
                                   << ")");
    if (!text.empty()) text += ' ';
    text += words[static_cast<size_t>(ids[i])];
  }
  return text;
}

}  // namespace fastar::world
