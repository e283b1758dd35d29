// The umT5 tokenizer and Wan's prompt cleaning against transformers' AutoTokenizer (T5TokenizerFast, as
// Wan calls it) through goldens written by tools/pipeline_golden/make_umt5_golden.py: a tiny SentencePiece
// unigram model with umT5's settings (byte fallback, nmt_nfkc, 300 extra ids) and 30+ prompts
// (pipeline-spec.md §5, §8 item 1).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fastar/core/error.h"
#include "fastar/model/html_unescape.h"
#include "fastar/model/prompt_clean.h"
#include "fastar/model/umt5_tokenizer.h"
#include "test_util.h"

namespace fastar {
namespace {

namespace fs = std::filesystem;

std::string golden(const std::string& name) { return testing::source_path("tests/model/golden/umt5_tiny/" + name); }

struct TokenizerCase {
  std::string name, prompt, clean;
  std::string known_gap;              // an ftfy fix fastar's cleaning leaves out (prompt_clean.h)
  bool ids_equal_despite_gap = false;  // the tokenizer's normalizer makes up for it
  int64_t text_len = 0, length = 0;
  std::vector<int32_t> ids;
};

std::vector<TokenizerCase> load_cases() {
  std::ifstream in(golden("tokenizer_cases.json"));
  const nlohmann::json j = nlohmann::json::parse(in);
  std::vector<TokenizerCase> cases;
  for (const auto& c : j.at("cases"))
    cases.push_back({c.at("name"), c.at("prompt"), c.at("clean"), c.at("known_gap"), c.at("ids_equal_despite_gap"),
                     c.at("text_len"), c.at("length"), c.at("ids").get<std::vector<int32_t>>()});
  return cases;
}

// From Python's cleaned text, C++ ids equal HF's in every case; from the raw prompt too, except after a
// known cleaning gap that changes the ids (mojibake repair). C++ cleaning equals Python's without a gap.
void expect_matches_transformers(const Umt5Tokenizer& tokenizer) {
  const std::vector<TokenizerCase> cases = load_cases();
  ASSERT_GE(cases.size(), 20u);
  for (const TokenizerCase& c : cases) {
    SCOPED_TRACE(c.name);
    const Umt5Tokens from_clean = tokenizer.encode_clean(c.clean, c.text_len);
    EXPECT_EQ(from_clean.ids, c.ids);
    EXPECT_EQ(from_clean.length, c.length);
    if (!c.known_gap.empty()) {
      EXPECT_NE(clean_prompt_wan(c.prompt), c.clean) << "the gap '" << c.known_gap << "' is closed: update the golden";
      if (!c.ids_equal_despite_gap) continue;
    } else {
      EXPECT_EQ(clean_prompt_wan(c.prompt), c.clean);
    }
    const Umt5Tokens tokens = tokenizer.encode(c.prompt, c.text_len);
    EXPECT_EQ(tokens.ids, c.ids);
    EXPECT_EQ(tokens.length, c.length);
  }
}

TEST(Umt5Tokenizer, IdsEqualTransformersAutoTokenizer) {
  const Umt5Tokenizer tokenizer = Umt5Tokenizer::load(golden("tokenizer"));
  expect_matches_transformers(tokenizer);
}

TEST(Umt5Tokenizer, FolderFacts) {
  const Umt5Tokenizer tokenizer = Umt5Tokenizer::load(golden("tokenizer"));
  EXPECT_EQ(tokenizer.eos_id(), 1);
  EXPECT_EQ(tokenizer.pad_id(), 0);
  EXPECT_EQ(tokenizer.unk_id(), 2);
  EXPECT_TRUE(tokenizer.merges_byte_runs());  // byte-fallback model, tokenizer.json says byte_fallback false
  EXPECT_EQ(tokenizer.id_limit(), 600 + 300);  // 600 pieces + <extra_id_0..299>
  EXPECT_EQ(tokenizer.added_tokens().size(), 303u);
}

// Wan's own folder may hold only spiece.model + tokenizer_config.json (pipeline-spec.md §5.2); AutoTokenizer
// then converts the slow tokenizer, which is how the goldens were made.
TEST(Umt5Tokenizer, SameIdsWithoutTokenizerJson) {
  const std::string dir = testing::make_temp_dir("umt5_tok_no_json");
  fs::copy_file(golden("tokenizer/spiece.model"), dir + "/spiece.model");
  fs::copy_file(golden("tokenizer/tokenizer_config.json"), dir + "/tokenizer_config.json");
  expect_matches_transformers(Umt5Tokenizer::load(dir));
}

// Only the extra-id count known: the slow tokenizer's numbering rule gives the same ids.
TEST(Umt5Tokenizer, SameIdsFromExtraIdsRule) {
  const std::string dir = testing::make_temp_dir("umt5_tok_extra_ids");
  fs::copy_file(golden("tokenizer/spiece.model"), dir + "/spiece.model");
  std::ofstream(dir + "/tokenizer_config.json") << R"({"extra_ids": 300})";
  const Umt5Tokenizer tokenizer = Umt5Tokenizer::load(dir);
  EXPECT_EQ(tokenizer.id_limit(), 900);
  expect_matches_transformers(tokenizer);
}

// A tokenizer.json with byte_fallback true keeps SentencePiece's byte pieces instead of one unk per run.
TEST(Umt5Tokenizer, KeepsBytesWhenTokenizerJsonHasByteFallback) {
  const std::string dir = testing::make_temp_dir("umt5_tok_bytes");
  fs::copy_file(golden("tokenizer/spiece.model"), dir + "/spiece.model");
  std::ofstream(dir + "/tokenizer.json") << R"({"model": {"type": "Unigram", "byte_fallback": true}, "added_tokens": []})";
  const Umt5Tokenizer bytes = Umt5Tokenizer::load(dir);
  const Umt5Tokenizer merged = Umt5Tokenizer::load(golden("tokenizer"));
  EXPECT_FALSE(bytes.merges_byte_runs());
  const Umt5Tokens with_bytes = bytes.encode("a 🐶", 32);
  const Umt5Tokens with_unk = merged.encode("a 🐶", 32);
  EXPECT_EQ(with_bytes.length, with_unk.length + 3);  // 4 UTF-8 bytes instead of one unk
  for (int64_t i = 0; i < with_bytes.length; ++i) EXPECT_NE(with_bytes.ids[static_cast<size_t>(i)], bytes.unk_id());
}

TEST(Umt5Tokenizer, PaddingAndTruncationKeepEos) {
  const Umt5Tokenizer tokenizer = Umt5Tokenizer::load(golden("tokenizer"));
  const Umt5Tokens empty = tokenizer.encode("", 1);
  EXPECT_EQ(empty.ids, std::vector<int32_t>{1});
  EXPECT_EQ(empty.length, 1);
  const Umt5Tokens cut = tokenizer.encode("A red fox runs through the snowy forest", 3);
  EXPECT_EQ(cut.length, 3);
  EXPECT_EQ(cut.ids.back(), 1);
  const Umt5Tokens padded = tokenizer.encode("A red fox", 8);
  EXPECT_EQ(padded.ids.size(), 8u);
  for (int64_t i = padded.length; i < 8; ++i) EXPECT_EQ(padded.ids[static_cast<size_t>(i)], 0);
  EXPECT_THROW(tokenizer.encode("x", 0), Error);
}

TEST(Umt5Tokenizer, ErrorsNameTheFile) {
  try {
    Umt5Tokenizer::load("/nonexistent/umt5/tokenizer");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_TRUE(testing::contains(e.what(), "/nonexistent/umt5/tokenizer")) << e.what();
  }
  const std::string dir = testing::make_temp_dir("umt5_tok_bad");
  try {
    Umt5Tokenizer::load(dir);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_TRUE(testing::contains(e.what(), "no spiece.model")) << e.what();
  }
  std::ofstream(dir + "/spiece.model") << "not a model";
  try {
    Umt5Tokenizer::load(dir);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_TRUE(testing::contains(e.what(), "not a SentencePiece model")) << e.what();
  }
}

TEST(PromptClean, CleanPromptsAreUnchanged) {
  for (const char* prompt : {"A red fox runs through the snowy forest at dawn.", "一只小猫在花园里玩耍", "Café 4K, 35mm (film)"})
    EXPECT_EQ(clean_prompt_wan(prompt), prompt);
}

TEST(PromptClean, KnownGapMojibakeIsKept) {
  // ftfy would repair this to "doesn't" (fix_encoding); fastar keeps it (prompt_clean.h).
  EXPECT_EQ(clean_prompt_wan("doesnâ€™t"), "doesnâ€™t");
}

TEST(PromptClean, InvalidUtf8IsAnError) {
  try {
    clean_prompt_wan("bad \xff byte");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_TRUE(testing::contains(e.what(), "invalid UTF-8")) << e.what();
  }
  EXPECT_THROW(clean_prompt_wan("cut \xe4\xb8"), Error);
  EXPECT_THROW(clean_prompt_wan("overlong \xc0\xaf"), Error);
  EXPECT_THROW(clean_prompt_wan("surrogate \xed\xa0\x80"), Error);
}

TEST(PromptClean, HtmlUnescapeFollowsPython) {
  // Values checked against Python 3.11's html.unescape.
  EXPECT_EQ(html_unescape(U"&amp;amp; &lt &gt; &notin; &notit; &#x41;&#66 &#xZ &#; &"), U"&amp; < > ∉ ¬it; AB &#xZ &#; &");
  EXPECT_EQ(html_unescape(U"&#99999999999999999999; &#x9F; &#11; &#xFFFF;x"), U"\uFFFD \u0178  x");
  EXPECT_EQ(ftfy_unescape_html(U"&amp &amp; &AMP; &EACUTE; &eacute; &#65; &#x26; &Eacute; &#x110000;"),
            U"&amp & & É é A & É \uFFFD");
}

}  // namespace
}  // namespace fastar
