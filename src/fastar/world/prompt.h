// The world's prompt grammar: text <-> scene description (docs/world.md).
//
//   prompt     := phrase { phrase }            each phrase ends with "." (optional after the last)
//   phrase     := object | background
//   object     := "a" [size] colour shape ["enters" "and"] motion [speed] ["then" "leaves"]
//   motion     := "bounces" | "drifts" direction | "orbits" | "stays"
//   background := "background" pattern ( "pans" direction [speed] | "stays" )
//   size       := "small" | "big"             speed := "slowly" | "quickly"
//   colour     := red | green | blue | yellow | cyan | magenta | white | orange
//   shape      := circle | square | triangle | cross
//   direction  := left | right | up | down
//   pattern    := plain | stripes | checks | dots | grid | clouds
//
// One to four objects, at most one background phrase (none = a plain background that stays),
// at most kMaxPromptTokens words. "stays" takes no speed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fastar::world {

constexpr int kMaxObjects = 4;

enum class SizeClass : uint8_t { Small, Medium, Big };
enum class Colour : uint8_t { Red, Green, Blue, Yellow, Cyan, Magenta, White, Orange };
enum class ShapeKind : uint8_t { Circle, Square, Triangle, Cross };
enum class Motion : uint8_t { Bounce, Drift, Orbit, Still };
enum class Direction : uint8_t { Left, Right, Up, Down };
enum class Speed : uint8_t { Slow, Normal, Fast };
enum class Pattern : uint8_t { Plain, Stripes, Checks, Dots, Grid, Clouds };

constexpr int kNumColours = 8;
constexpr int kNumShapes = 4;
constexpr int kNumMotions = 4;
constexpr int kNumPatterns = 6;

struct ObjectSpec {
  SizeClass size = SizeClass::Medium;
  Colour colour = Colour::Red;
  ShapeKind shape = ShapeKind::Circle;
  Motion motion = Motion::Still;
  Direction direction = Direction::Right;  // used by Motion::Drift only
  Speed speed = Speed::Normal;             // Normal for Motion::Still
  bool enters = false;                     // slides in from an edge after a few frames
  bool leaves = false;                     // slides out over an edge later and is gone
  bool operator==(const ObjectSpec&) const = default;
};

struct BackgroundSpec {
  Pattern pattern = Pattern::Plain;
  bool pans = false;
  Direction direction = Direction::Right;  // pans only
  Speed speed = Speed::Normal;             // pans only
  bool operator==(const BackgroundSpec&) const = default;
};

struct SceneSpec {
  std::vector<ObjectSpec> objects;  // drawn in this order (later on top); 1..kMaxObjects
  BackgroundSpec background;
  bool has_background_phrase = false;  // whether the prompt named the background
  bool operator==(const SceneSpec&) const = default;
};

// Parses a prompt. Throws fastar::Error naming the unknown word or the phrase that breaks the
// grammar (its word position and what was expected there).
SceneSpec parse_prompt(const std::string& prompt);
// The canonical text of a scene (single spaces, every phrase ends with " ."); parse_prompt of it
// gives the scene back.
std::string format_prompt(const SceneSpec& scene);
// A random valid scene / prompt (1-4 objects, random modifiers, usually a background phrase),
// fully decided by `seed`.
SceneSpec sample_scene(uint64_t seed);
std::string sample_prompt(uint64_t seed);

// Names as they appear in prompts.
const char* colour_name(Colour c);
const char* shape_name(ShapeKind s);
const char* direction_name(Direction d);
const char* pattern_name(Pattern p);

}  // namespace fastar::world
