// `fastar generate --policy tempcache`: its flags, its report, and its errors.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace fs = std::filesystem;

namespace fastar {
namespace {

using Result = testing::CliResult;
using testing::contains;
Result run(const std::string& args) { return testing::run_fastar(args); }

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

const std::string kBase = "generate --model " + testing::source_path("tests/model/golden/wan_tiny_original") +
                          " --frames 6 --chunk-frames 2 --latent-size 8x12 --seed 4 ";

// The frames of two output folders are byte-identical.
void expect_same_frames(const std::string& a, const std::string& b) {
  for (int f = 0; f < 6; ++f) {
    char name[32];
    std::snprintf(name, sizeof name, "/frame_%06d.png", f);
    const std::string fa = read_file(a + name), fb = read_file(b + name);
    ASSERT_FALSE(fa.empty()) << a + name;
    EXPECT_EQ(fa, fb) << name;
  }
}

TEST(CliTempCache, ThresholdAboveOneWritesTheDenseVideoAndItsStatistics) {
  const std::string dir = testing::make_temp_dir("cli_tempcache");
  Result dense = run(kBase + "--policy dense --out " + dir + "/dense");
  ASSERT_EQ(dense.exit_code, 0) << dense.output;
  for (const char* ann : {"lsh", "quant"}) {
    const std::string out = dir + "/tc_" + ann;
    Result r = run(kBase + "--policy tempcache --tempcache-threshold 1.5 --tempcache-recall --ann " + ann + " --out " + out);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_TRUE(contains(r.output, "KV density 100.0%")) << r.output;
    EXPECT_TRUE(contains(r.output, "attention recall 100.00%")) << r.output;
    expect_same_frames(dir + "/dense", out);
    const nlohmann::json stats = nlohmann::json::parse(read_file(out + "/tempcache.json"));
    EXPECT_EQ(stats["options"]["ann"], ann);
    EXPECT_EQ(stats["options"]["threshold"], 1.5);
    ASSERT_EQ(stats["layers"].size(), 2u);
    EXPECT_EQ(stats["total"]["merges"], 0);
    EXPECT_EQ(stats["layers"][0]["dense_tokens"], 4 * 24);  // 2 committed chunks of 2 frames x 24 tokens
    EXPECT_DOUBLE_EQ(stats["layers"][1]["density"].get<double>(), 1.0);
    for (const auto& e : fs::directory_iterator(out)) EXPECT_FALSE(contains(e.path().string(), ".tmp")) << e.path();
  }
}

TEST(CliTempCache, ComposesWithTheWindowPolicy) {
  const std::string dir = testing::make_temp_dir("cli_tempcache_window");
  Result w = run(kBase + "--policy window --window 1 --sink 1 --out " + dir + "/window");
  ASSERT_EQ(w.exit_code, 0) << w.output;
  Result t = run(kBase + "--policy tempcache --tempcache-threshold 2 --window 1 --sink 1 --tempcache-match query --out " + dir + "/tc");
  ASSERT_EQ(t.exit_code, 0) << t.output;
  EXPECT_TRUE(contains(t.output, "window 1 frames + 1 sink frames")) << t.output;
  expect_same_frames(dir + "/window", dir + "/tc");
  // At the default threshold it runs and reports a density in (0, 100] %.
  Result d = run(kBase + "--policy tempcache --tempcache-max-tokens 30 --out " + dir + "/bounded");
  ASSERT_EQ(d.exit_code, 0) << d.output;
  const nlohmann::json stats = nlohmann::json::parse(read_file(dir + "/bounded/tempcache.json"));
  EXPECT_LE(stats["layers"][0]["cached_tokens"].get<double>(), 30.0);
}

TEST(CliTempCache, BadValuesAreErrors) {
  const std::string out = testing::make_temp_dir("cli_tempcache_bad") + "/x";
  struct Case {
    std::string args, message;
  };
  const std::vector<Case> cases = {
      {"--policy tempcache --ann faiss", "unknown --ann 'faiss'; choose lsh or quant"},
      {"--policy tempcache --tempcache-threshold high", "--tempcache-threshold must be a number"},
      {"--policy tempcache --tempcache-threshold nan", "--tempcache-threshold must be a number >= -1"},
      {"--policy tempcache --tempcache-threshold -3", "--tempcache-threshold must be a number >= -1"},
      {"--policy tempcache --tempcache-match value", "unknown --tempcache-match 'value'; choose key or query"},
      {"--policy tempcache --tempcache-max-tokens -5", "--tempcache-max-tokens"},
      {"--policy dense --tempcache-threshold 0.8", "apply only to --policy tempcache"},
      {"--policy window --ann lsh", "apply only to --policy tempcache"},
      {"--policy tempcache --schedule rolling-forcing", "rolling-forcing uses its own"},
      {"--policy tempcache --tempcache-recall=yes", "--tempcache-recall"},
  };
  for (const Case& c : cases) {
    Result r = run(kBase + c.args + " --out " + out);
    EXPECT_NE(r.exit_code, 0) << c.args;
    EXPECT_TRUE(contains(r.output, c.message)) << c.args << "\n" << r.output;
    EXPECT_FALSE(fs::exists(out + "/tempcache.json")) << c.args;
  }
}

}  // namespace
}  // namespace fastar
