// The shipped world model (models/world-small) against the ground-truth world it was trained on,
// and against the same architecture with untrained (random) weights; its ARL² hybrid version
// (models/world-small-arl2) against the world and against its dense teacher.
//
// The world seed places the objects; the model sees only the prompt and the actions, so frame-exact
// agreement is not expected. What a trained model must show, and a random one cannot: frames close
// to the world's (PSNR), and the prompt's objects in the prompt's colours (pixels near each named
// colour's palette value).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <cstdio>

#include "fastar/attention/arl2_hybrid_memory.h"
#include "fastar/attention/kv_policies.h"
#include "fastar/model/text_encoder.h"
#include "fastar/model/wan_dit.h"
#include "fastar/rollout/latent_preview.h"
#include "fastar/rollout/self_forcing.h"
#include "fastar/world/world.h"
#include "test_util.h"

namespace fastar {
namespace {

constexpr const char* kPrompt = "a red circle bounces . a blue square drifts left . background stripes pans right .";
constexpr int64_t kFrames = 6;  // two chunks
constexpr uint64_t kSeed = 1;

struct Score {
  double psnr = 0.0;          // mean over frames, against the world
  double object_pixels = 0.0; // share of pixels that look like an object (saturated and bright)
  double prompt_share = 0.0;  // of those, the share whose nearest palette colour the prompt names
  double red = 0.0, blue = 0.0;  // of those, the share nearest to red / to blue
  std::vector<RgbFrame> frames;
};

double psnr_of(const std::vector<RgbFrame>& a, const std::vector<RgbFrame>& b) {  // mean MSE over all frames first
  double mse = 0.0;
  int64_t n = 0;
  for (size_t f = 0; f < a.size(); ++f)
    for (size_t i = 0; i < a[f].rgb.size(); ++i, ++n) {
      const double d = double(a[f].rgb[i]) - double(b[f].rgb[i]);
      mse += d * d;
    }
  return 10.0 * std::log10(255.0 * 255.0 / std::max(mse / static_cast<double>(n), 1e-9));
}

// Object pixels: max − min channel >= 60 and max >= 100 (the backgrounds are dark and dull). Each is
// given the nearest of the palette's colours (white excluded: the player's ring).
void colour_census(const std::vector<RgbFrame>& frames, Score* s) {
  const world::Colour palette[] = {world::Colour::Red,  world::Colour::Green,   world::Colour::Blue, world::Colour::Yellow,
                                   world::Colour::Cyan, world::Colour::Magenta, world::Colour::Orange};
  int64_t total = 0, objects = 0, red = 0, blue = 0;
  for (const RgbFrame& f : frames)
    for (size_t i = 0; i + 2 < f.rgb.size(); i += 3, ++total) {
      const int r = f.rgb[i], g = f.rgb[i + 1], b = f.rgb[i + 2];
      const int hi = std::max({r, g, b}), lo = std::min({r, g, b});
      if (hi - lo < 60 || hi < 100) continue;
      ++objects;
      double best = 1e30;
      world::Colour nearest = world::Colour::Red;
      for (world::Colour c : palette) {
        const world::Rgb p = world::colour_rgb(c);
        const double d = (r - p[0]) * (r - p[0]) + (g - p[1]) * (g - p[1]) + (b - p[2]) * (b - p[2]);
        if (d < best) best = d, nearest = c;
      }
      red += nearest == world::Colour::Red;
      blue += nearest == world::Colour::Blue;
    }
  s->object_pixels = static_cast<double>(objects) / static_cast<double>(std::max<int64_t>(total, 1));
  s->red = static_cast<double>(red) / static_cast<double>(std::max<int64_t>(objects, 1));
  s->blue = static_cast<double>(blue) / static_cast<double>(std::max<int64_t>(objects, 1));
  s->prompt_share = s->red + s->blue;
}

// The model's fastar_defaults: window 9 + sink 0 (for a hybrid model: on its softmax layers, with ARL²).
Score roll_out(const WanModel& model, const TextEncoder& encoder, const std::string& action_text = "RRRRRR",
               int64_t num_frames = kFrames) {
  const WanConfig& c = model.config();
  const std::vector<uint8_t> actions = world::parse_actions(action_text, num_frames);
  const Tensor truth = world::render_frames(kPrompt, actions, kSeed, num_frames);  // uint8 [F, 64, 64, 3]
  const WanPrompt prompt = model.prepare_prompt(encoder.encode(kPrompt));
  std::unique_ptr<CrossFrameMemory> window = std::make_unique<WindowMemory>(c.num_layers, c.num_heads, c.head_dim(), 9, 0);
  std::unique_ptr<CrossFrameMemory> owner =
      c.hybrid_layers.empty() ? std::move(window)
                              : std::make_unique<Arl2HybridMemory>(c, model.weights(), std::move(window));
  CrossFrameMemory& memory = *owner;
  RolloutConfig rc;
  rc.seed = kSeed;
  rc.latent_height = c.latent_height;
  rc.latent_width = c.latent_width;
  SelfForcingRollout rollout(model, memory, prompt, rc);
  std::vector<RgbFrame> frames;
  for (int64_t chunk = 0; chunk < num_frames / 3; ++chunk) {
    Tensor one_hot = Tensor::zeros({3, c.action_dim});
    for (int64_t f = 0; f < 3; ++f) one_hot.data<float>()[f * c.action_dim + actions[static_cast<size_t>(chunk * 3 + f)]] = 1.0f;
    const Tensor x0 = rollout.next_chunk(&one_hot);
    for (int64_t f = 0; f < 3; ++f) frames.push_back(latent_frame_to_rgb(x0, f));
  }
  Score s;
  const uint8_t* t = truth.data<uint8_t>();
  for (int64_t f = 0; f < num_frames; ++f) {
    double mse = 0.0;
    const RgbFrame& g = frames[static_cast<size_t>(f)];
    for (size_t i = 0; i < g.rgb.size(); ++i) {
      const double d = double(g.rgb[i]) - t[f * 64 * 64 * 3 + static_cast<int64_t>(i)];
      mse += d * d;
    }
    mse /= static_cast<double>(g.rgb.size());
    s.psnr += 10.0 * std::log10(255.0 * 255.0 / std::max(mse, 1e-9)) / static_cast<double>(num_frames);
  }
  colour_census(frames, &s);
  s.frames = std::move(frames);
  return s;
}

TEST(ShippedWorldModel, DrawsThePromptAndBeatsAnUntrainedModel) {
  const std::string path = testing::source_path("models/world-small");
  const WanModel trained = WanModel::load(path);
  const TextEncoder encoder = TextEncoder::load(path);
  const WanModel untrained(trained.config(), random_wan_weights(trained.config(), 7));
  const Score a = roll_out(trained, encoder), b = roll_out(untrained, encoder);
  for (const auto& [name, s] : {std::pair{"trained", a}, std::pair{"untrained", b}})
    std::printf("%-9s PSNR %.2f dB; object pixels %.4f, of which red %.3f, blue %.3f\n", name, s.psnr, s.object_pixels,
                s.red, s.blue);
  // Measured with the shipped weights (18.3 min of training, docs/world-model.md): trained 14.17 dB,
  // object pixels 4.4% of which 55.5% red and 43.7% blue; untrained 5.5 dB, 90% "object" pixels
  // (coloured noise) spread over the palette. (10.8 min: 14.75 dB, 2.7%, 54.8% red, 44.0% blue; the first,
  // 4.5-minute model: 15.2 dB, 1.3%, 6% red, 56% blue.)
  EXPECT_GE(a.psnr, 13.0);
  EXPECT_GE(a.psnr, b.psnr + 5.0);
  EXPECT_GE(a.object_pixels, 0.002);  // objects are drawn ...
  EXPECT_LE(a.object_pixels, 0.10);   // ... on a dull background, not as coloured noise
  EXPECT_GE(a.prompt_share, 0.8);     // in the prompt's colours
  EXPECT_GE(a.prompt_share, b.prompt_share + 0.2);
  EXPECT_GE(a.red, 0.2);              // both objects
  EXPECT_GE(a.blue, 0.2);
}

// The ARL² hybrid version (6 of 8 layers with a gated delta-rule memory, distilled from the dense model):
// close to its teacher's rollout of the same seed, and drawing the same prompt.
TEST(ShippedWorldModel, HybridFollowsItsTeacher) {
  const std::string teacher_path = testing::source_path("models/world-small");
  const std::string hybrid_path = testing::source_path("models/world-small-arl2");
  const WanModel teacher = WanModel::load(teacher_path);
  const WanModel hybrid = WanModel::load(hybrid_path);
  ASSERT_EQ(hybrid.config().hybrid_layers.size(), 6u);
  const Score t = roll_out(teacher, TextEncoder::load(teacher_path));
  const Score h = roll_out(hybrid, TextEncoder::load(hybrid_path));
  WanWeights random_hybrid = random_wan_weights(hybrid.config(), 7);
  const WanModel untrained(hybrid.config(), std::move(random_hybrid));
  const Score u = roll_out(untrained, TextEncoder::load(hybrid_path));
  const double to_teacher = psnr_of(h.frames, t.frames), untrained_to_teacher = psnr_of(u.frames, t.frames);
  std::printf("hybrid    PSNR %.2f dB vs world, %.2f dB vs the teacher (untrained hybrid: %.2f); object pixels %.4f, "
              "of which red %.3f, blue %.3f\n", h.psnr, to_teacher, untrained_to_teacher, h.object_pixels, h.red, h.blue);
  // Measured with the shipped weights (6.8 min of distillation from the 18.3-minute teacher): 25.56 dB vs
  // the teacher (an untrained hybrid: 6.52), 14.30 dB vs the world; object pixels 2.4%, 95% of them blue,
  // 3% red (this hybrid does not draw this prompt's red circle within 24 frames, its teacher does:
  // docs/world-model.md).
  EXPECT_GE(to_teacher, 20.0);
  EXPECT_GE(to_teacher, untrained_to_teacher + 10.0);
  EXPECT_GE(h.psnr, 13.0);
  EXPECT_GE(h.prompt_share, 0.5);
  EXPECT_LE(h.object_pixels, 0.10);
}

// Centre (x, y) of the near-white pixels of a frame (all channels > 170: the player's white ring; the
// world's objects and backgrounds are coloured or dark), or (nan, nan) when there are none.
std::pair<double, double> ring_centre(const RgbFrame& f) {
  double sx = 0, sy = 0;
  int64_t n = 0;
  for (int64_t y = 0; y < 64; ++y)
    for (int64_t x = 0; x < 64; ++x) {
      const uint8_t* p = &f.rgb[static_cast<size_t>((y * 64 + x) * 3)];
      if (std::min({p[0], p[1], p[2]}) > 170) sx += static_cast<double>(x), sy += static_cast<double>(y), ++n;
    }
  if (n == 0) return {std::nan(""), std::nan("")};
  return {sx / static_cast<double>(n), sy / static_cast<double>(n)};
}

// The player follows the actions: the same prompt and seed rolled out with "right" on every frame and
// with "left" on every frame end with the ring further right in the first than in the second (the world
// itself: 43 px apart after 12 frames), and with "down" further down than with "up" (learned by the
// 18.3-minute model; the 10.8-minute one lost the ring going down).
TEST(ShippedWorldModel, PlayerFollowsTheActions) {
  const std::string path = testing::source_path("models/world-small");
  const WanModel trained = WanModel::load(path);
  const TextEncoder encoder = TextEncoder::load(path);
  const WanModel untrained(trained.config(), random_wan_weights(trained.config(), 7));
  constexpr int64_t kActionFrames = 12;
  auto final_x = [&](const WanModel& model, const char* action) {
    const std::string actions(static_cast<size_t>(kActionFrames), action[0]);
    return ring_centre(roll_out(model, encoder, actions, kActionFrames).frames.back());
  };
  const auto right = final_x(trained, "R"), left = final_x(trained, "L"), up = final_x(trained, "U"),
             down = final_x(trained, "D");
  const auto u_right = final_x(untrained, "R"), u_left = final_x(untrained, "L");
  std::printf("ring after 12 frames: R x %.1f, L x %.1f (apart %.1f px); U y %.1f, D y %.1f; untrained R−L %.1f px\n",
              right.first, left.first, right.first - left.first, up.second, down.second, u_right.first - u_left.first);
  // Measured with the shipped weights (18.3 min): R 42.6, L 4.2 (38.4 px apart; the world: 43); U ends at
  // y 18.8, D at y 55.6 (36.8 px apart); untrained R−L 0.4 px. (10.8 min: R−L 35 px, D lost the ring.)
  ASSERT_FALSE(std::isnan(right.first) || std::isnan(left.first)) << "no ring drawn";
  EXPECT_GE(right.first - left.first, 15.0);
  ASSERT_FALSE(std::isnan(up.second) || std::isnan(down.second)) << "no ring drawn going up or down";
  EXPECT_GE(down.second - up.second, 15.0);
  EXPECT_LE(std::abs(u_right.first - u_left.first), 5.0);  // an untrained model does not respond
}

}  // namespace
}  // namespace fastar
