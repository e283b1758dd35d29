#include "fastar/world/actions.h"

#include "fastar/core/error.h"
#include "fastar/world/random.h"

namespace fastar::world {

std::vector<uint8_t> parse_actions(const std::string& text, int64_t frames) {
  FASTAR_CHECK(static_cast<int64_t>(text.size()) <= frames,
               "actions: " << text.size() << " actions for " << frames
                           << " frames; give at most one action per frame (shorter is padded with '.')");
  std::vector<uint8_t> actions(static_cast<size_t>(frames), static_cast<uint8_t>(Action::None));
  for (size_t i = 0; i < text.size(); ++i) {
    Action a;
    switch (text[i]) {
      case '.': a = Action::None; break;
      case 'U': case 'u': a = Action::Up; break;
      case 'D': case 'd': a = Action::Down; break;
      case 'L': case 'l': a = Action::Left; break;
      case 'R': case 'r': a = Action::Right; break;
      default:
        FASTAR_FAIL("actions: character '" << text[i] << "' at frame " << i
                                            << " is not an action; use . (none), U, D, L or R, one per frame");
    }
    actions[i] = static_cast<uint8_t>(a);
  }
  return actions;
}

std::string format_actions(const std::vector<uint8_t>& actions) {
  static const char kChars[kNumActions] = {'.', 'U', 'D', 'L', 'R'};
  std::string text;
  text.reserve(actions.size());
  for (size_t i = 0; i < actions.size(); ++i) {
    FASTAR_CHECK(actions[i] < kNumActions, "actions: value " << int(actions[i]) << " at frame " << i
                                                             << " is not an action (0..4)");
    text.push_back(kChars[actions[i]]);
  }
  return text;
}

std::vector<uint8_t> sample_actions(uint64_t seed, int64_t frames) {
  Rng rng(seed, kStreamActions);
  std::vector<uint8_t> actions;
  actions.reserve(static_cast<size_t>(frames));
  while (static_cast<int64_t>(actions.size()) < frames) {
    const uint8_t a = rng.chance(0.4) ? 0 : static_cast<uint8_t>(rng.integer(1, 4));
    const int64_t run = rng.integer(2, 8);
    for (int64_t i = 0; i < run && static_cast<int64_t>(actions.size()) < frames; ++i) actions.push_back(a);
  }
  return actions;
}

std::vector<Tensor> action_chunks(const std::vector<uint8_t>& actions, int64_t chunks, int64_t chunk_frames,
                                  int64_t action_dim) {
  FASTAR_CHECK(static_cast<int64_t>(actions.size()) >= chunks * chunk_frames,
               "actions: " << actions.size() << " actions for " << chunks << " chunks of " << chunk_frames << " frames");
  std::vector<Tensor> out;
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    out.push_back(Tensor::zeros({chunk_frames, action_dim}));
    if (action_dim != kNumActions) continue;
    for (int64_t f = 0; f < chunk_frames; ++f)
      out.back().data<float>()[f * action_dim + actions[static_cast<size_t>(chunk * chunk_frames + f)]] = 1.0f;
  }
  return out;
}

}  // namespace fastar::world
