// The procedural world of fastar's small trained model (docs/world.md): the library API.
//
//   SceneSpec s = parse_prompt("a red circle bounces . background stripes pans right .");
//   std::vector<int32_t> ids = tokenize_padded(prompt);            // [kMaxPromptTokens]
//   Tensor frames = render_frames(prompt, parse_actions("RRUU", 24), seed, 24);  // uint8 [24, 64, 64, 3]
//   World w(prompt, seed);  w.objects_at(t), w.player_at(actions, t)  // positions per frame
//   std::vector<RevisitFrameTruth> truth;                              // the revisit scene (revisit.h)
//   Tensor r = render_revisit_frames(revisit_actions({}, 96), seed, 96, &truth);
#pragma once

#include "fastar/world/actions.h"
#include "fastar/world/dataset.h"
#include "fastar/world/prompt.h"
#include "fastar/world/render.h"
#include "fastar/world/revisit.h"
#include "fastar/world/revisit_json.h"
#include "fastar/world/revisit_script.h"
#include "fastar/world/scene.h"
#include "fastar/world/vocabulary.h"
