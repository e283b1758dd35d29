// The world's vocabulary, tokenizer and prompt grammar.
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "fastar/core/error.h"
#include "fastar/world/world.h"
#include "test_util.h"

namespace fastar::world {
namespace {

// The message of the fastar::Error thrown by fn ("" if none).
template <typename Fn>
std::string error_of(Fn fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(WorldVocabulary, FileMatchesTheCodeAndIsSmall) {
  std::ifstream in(testing::source_path("configs/world/vocab.json"));
  ASSERT_TRUE(in) << "configs/world/vocab.json is missing; regenerate it with: fastar world vocab > configs/world/vocab.json";
  const nlohmann::json file = nlohmann::json::parse(in);
  EXPECT_EQ(file.get<std::vector<std::string>>(), vocabulary())
      << "configs/world/vocab.json is stale; regenerate it with: fastar world vocab > configs/world/vocab.json";
  EXPECT_EQ(nlohmann::json::parse(vocabulary_json()), file);
  const std::vector<std::string>& words = vocabulary();
  EXPECT_LE(words.size(), 64u);
  EXPECT_EQ(words[kPadId], "<pad>");
  EXPECT_EQ(words[kUnkId], "<unk>");
  EXPECT_EQ(std::set<std::string>(words.begin(), words.end()).size(), words.size()) << "duplicate words";
  for (size_t i = 0; i < words.size(); ++i) EXPECT_EQ(word_id(words[i]), static_cast<int32_t>(i));
}

TEST(WorldTokenizer, IdsFollowTheVocabularyOrder) {
  const std::vector<std::string>& words = vocabulary();
  const std::vector<int32_t> ids = tokenize("A Red circle bounces.  background stripes pans right");
  const std::vector<std::string> expected = {"a", "red", "circle", "bounces", ".", "background", "stripes", "pans", "right"};
  ASSERT_EQ(ids.size(), expected.size());
  for (size_t i = 0; i < ids.size(); ++i) EXPECT_EQ(words[static_cast<size_t>(ids[i])], expected[i]);
  const std::vector<int32_t> padded = tokenize_padded("a red circle bounces .");
  ASSERT_EQ(padded.size(), static_cast<size_t>(kMaxPromptTokens));
  for (int i = 5; i < kMaxPromptTokens; ++i) EXPECT_EQ(padded[static_cast<size_t>(i)], kPadId);
  EXPECT_EQ(detokenize(padded), "a red circle bounces .");
}

TEST(WorldTokenizer, RejectsUnknownWordsLengthAndSymbols) {
  EXPECT_NE(error_of([] { tokenize("a red blob bounces"); }).find("unknown word 'blob' (word 3)"), std::string::npos);
  EXPECT_NE(error_of([] { tokenize("a red circle bounces <unk>"); }).find("'<'"), std::string::npos);
  EXPECT_NE(error_of([] { tokenize("   "); }).find("empty"), std::string::npos);
  std::string long_prompt;
  for (int i = 0; i < 13; ++i) long_prompt += "a red circle bounces ";  // 52 words
  EXPECT_NE(error_of([&] { tokenize(long_prompt); }).find("52 words, more than the limit of 48"), std::string::npos);
  std::string exact;
  for (int i = 0; i < 12; ++i) exact += "a red circle bounces ";  // 48 words: allowed by the tokenizer
  EXPECT_EQ(tokenize(exact).size(), 48u);
  EXPECT_NE(error_of([] { detokenize({kUnkId}); }).find("not a word id"), std::string::npos);
}

TEST(WorldPrompt, ParsesEveryModifier) {
  const SceneSpec s = parse_prompt(
      "a big red circle enters and bounces quickly then leaves . a small blue square drifts left slowly . "
      "a yellow triangle orbits . a white cross stays then leaves . background clouds pans down quickly .");
  ASSERT_EQ(s.objects.size(), 4u);
  const ObjectSpec& a = s.objects[0];
  EXPECT_EQ(a.size, SizeClass::Big);
  EXPECT_EQ(a.colour, Colour::Red);
  EXPECT_EQ(a.shape, ShapeKind::Circle);
  EXPECT_EQ(a.motion, Motion::Bounce);
  EXPECT_EQ(a.speed, Speed::Fast);
  EXPECT_TRUE(a.enters);
  EXPECT_TRUE(a.leaves);
  const ObjectSpec& b = s.objects[1];
  EXPECT_EQ(b.size, SizeClass::Small);
  EXPECT_EQ(b.colour, Colour::Blue);
  EXPECT_EQ(b.shape, ShapeKind::Square);
  EXPECT_EQ(b.motion, Motion::Drift);
  EXPECT_EQ(b.direction, Direction::Left);
  EXPECT_EQ(b.speed, Speed::Slow);
  EXPECT_FALSE(b.enters || b.leaves);
  EXPECT_EQ(s.objects[2].motion, Motion::Orbit);
  EXPECT_EQ(s.objects[2].size, SizeClass::Medium);
  EXPECT_EQ(s.objects[2].speed, Speed::Normal);
  EXPECT_EQ(s.objects[3].motion, Motion::Still);
  EXPECT_EQ(s.objects[3].shape, ShapeKind::Cross);
  EXPECT_TRUE(s.objects[3].leaves);
  EXPECT_TRUE(s.has_background_phrase);
  EXPECT_EQ(s.background.pattern, Pattern::Clouds);
  EXPECT_TRUE(s.background.pans);
  EXPECT_EQ(s.background.direction, Direction::Down);
  EXPECT_EQ(s.background.speed, Speed::Fast);

  // No background phrase: plain and still. The last "." may be left out.
  const SceneSpec plain = parse_prompt("a green cross orbits");
  EXPECT_FALSE(plain.has_background_phrase);
  EXPECT_EQ(plain.background, BackgroundSpec{});
  // The background phrase may come first.
  EXPECT_EQ(parse_prompt("background dots stays . a green cross orbits .").background.pattern, Pattern::Dots);
}

TEST(WorldPrompt, BadPromptsNameTheProblem) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"a red blob bounces", "unknown word 'blob'"},
      {"a red circle", "ends too early"},
      {"red circle bounces", "word 1 'red': expected a phrase starting with 'a'"},
      {"a circle bounces", "word 2 'circle': expected a colour"},
      {"a red bounces", "word 3 'bounces': expected a shape"},
      {"a red circle drifts", "expected a direction after 'drifts'"},
      {"a red circle drifts sideways", "unknown word 'sideways'"},
      {"a red circle enters bounces", "expected 'and' after 'enters'"},
      {"a red circle stays quickly", "'stays' takes no speed"},
      {"a red circle bounces then", "expected 'leaves' after 'then'"},
      {"a red circle bounces left", "word 5 'left': expected '.' to end the object phrase"},
      {"a red circle bounces . background stripes", "expected 'pans DIRECTION' or 'stays'"},
      {"a red circle bounces . background pans left", "expected a pattern after 'background'"},
      {"a red circle bounces . background plain stays . background dots stays", "described twice"},
      {"background stripes stays .", "names no object"},
      {"a red circle bounces . a red circle bounces . a red circle bounces . a red circle bounces . a red circle "
       "bounces .",
       "more than 4 objects"},
  };
  for (const auto& [prompt, expected] : cases) {
    const std::string message = error_of([&] { parse_prompt(prompt); });
    EXPECT_NE(message.find(expected), std::string::npos) << "prompt: " << prompt << "\nmessage: " << message;
  }
}

TEST(WorldPrompt, SampledPromptsParseRoundTripAndCoverTheVocabulary) {
  std::set<std::string> words_seen;
  std::set<size_t> counts_seen;
  int with_background = 0;
  constexpr int kPrompts = 3000;
  for (uint64_t seed = 0; seed < kPrompts; ++seed) {
    const std::string prompt = sample_prompt(seed);
    ASSERT_EQ(prompt, sample_prompt(seed)) << "sample_prompt is not deterministic";
    SceneSpec scene;
    ASSERT_NO_THROW(scene = parse_prompt(prompt)) << prompt;
    EXPECT_EQ(scene, sample_scene(seed)) << prompt;
    EXPECT_EQ(format_prompt(scene), prompt);
    const std::vector<int32_t> ids = tokenize(prompt);
    EXPECT_LE(ids.size(), static_cast<size_t>(kMaxPromptTokens));
    EXPECT_EQ(detokenize(tokenize_padded(prompt)), prompt);
    for (int32_t id : ids) words_seen.insert(vocabulary()[static_cast<size_t>(id)]);
    counts_seen.insert(scene.objects.size());
    with_background += scene.has_background_phrase;
  }
  // Every word but the two specials appears in some sampled prompt.
  for (size_t i = 2; i < vocabulary().size(); ++i) EXPECT_TRUE(words_seen.count(vocabulary()[i])) << vocabulary()[i];
  EXPECT_EQ(counts_seen, (std::set<size_t>{1, 2, 3, 4}));
  EXPECT_GT(with_background, kPrompts * 3 / 4);
  EXPECT_LT(with_background, kPrompts);
  EXPECT_NE(sample_prompt(1), sample_prompt(2));
}

TEST(WorldActions, ParseFormatAndSample) {
  EXPECT_EQ(parse_actions(".UDLRudlr", 10), (std::vector<uint8_t>{0, 1, 2, 3, 4, 1, 2, 3, 4, 0}));
  EXPECT_EQ(format_actions(parse_actions("..UUDDLLRR", 10)), "..UUDDLLRR");
  EXPECT_NE(error_of([] { parse_actions("UUX", 5); }).find("'X' at frame 2"), std::string::npos);
  EXPECT_NE(error_of([] { parse_actions("UUUU", 3); }).find("4 actions for 3 frames"), std::string::npos);

  int64_t total = 0, none = 0;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    const std::vector<uint8_t> a = sample_actions(seed, 100);
    ASSERT_EQ(a.size(), 100u);
    EXPECT_EQ(a, sample_actions(seed, 100));
    // Runs of at least two frames, except possibly the last one (cut by the clip length).
    size_t start = 0;
    for (size_t i = 1; i <= a.size(); ++i) {
      if (i == a.size() || a[i] != a[start]) {
        if (i < a.size()) EXPECT_GE(i - start, 2u) << "seed " << seed;
        start = i;
      }
    }
    for (uint8_t v : a) {
      EXPECT_LT(v, kNumActions);
      none += v == 0;
      ++total;
    }
  }
  // About 40% of runs are none (runs of equal actions merge, so allow a wide band).
  EXPECT_GT(static_cast<double>(none) / total, 0.3);
  EXPECT_LT(static_cast<double>(none) / total, 0.6);
}

}  // namespace
}  // namespace fastar::world
