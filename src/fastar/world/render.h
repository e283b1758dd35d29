// Drawing the world: background texture, objects in prompt order, then the player on top
// (docs/world.md). Hard-edged shapes tested at pixel centres, so every byte is reproducible.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "fastar/core/tensor.h"
#include "fastar/world/scene.h"

namespace fastar::world {

using Rgb = std::array<uint8_t, 3>;
// The player's ring colour.
constexpr Rgb kPlayerRgb = {255, 255, 255};

Rgb colour_rgb(Colour c);
// Whether the point (dx, dy) from a shape's centre is inside the shape of half size r.
// Every shape contains its centre; all fit in the square of half side r.
bool shape_contains(ShapeKind shape, double r, double dx, double dy);
// Whether (dx, dy) from the player's centre is on its ring.
bool player_contains(double dx, double dy);

// Draws one frame. rgb: [kFrameSize, kFrameSize, 3], row-major.
void render_state(const BackgroundLook& background, const FrameState& state, uint8_t* rgb);
// Frame t alone (cost O(t) for the player's position, nothing else from earlier frames).
void render_frame(const World& world, const std::vector<uint8_t>& actions, int64_t t, uint8_t* rgb);
// Frames 0..frames-1. out: [frames, kFrameSize, kFrameSize, 3]. actions shorter than frames are
// padded with none.
void render_frames_into(const World& world, const std::vector<uint8_t>& actions, int64_t frames, uint8_t* out);
// uint8 tensor [frames, 64, 64, 3] (RGB) for (prompt, actions, seed).
Tensor render_frames(const std::string& prompt, const std::vector<uint8_t>& actions, uint64_t seed, int64_t frames);

}  // namespace fastar::world
