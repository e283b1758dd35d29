#include "fastar/world/prompt.h"

#include <array>
#include <optional>

#include "fastar/core/error.h"
#include "fastar/world/random.h"
#include "fastar/world/vocabulary.h"

namespace fastar::world {

namespace {

constexpr std::array<const char*, kNumColours> kColourNames = {"red",  "green",   "blue",  "yellow",
                                                               "cyan", "magenta", "white", "orange"};
constexpr std::array<const char*, kNumShapes> kShapeNames = {"circle", "square", "triangle", "cross"};
constexpr std::array<const char*, 4> kDirectionNames = {"left", "right", "up", "down"};
constexpr std::array<const char*, kNumPatterns> kPatternNames = {"plain", "stripes", "checks",
                                                                 "dots",  "grid",    "clouds"};

template <size_t N>
std::optional<size_t> find_name(const std::array<const char*, N>& names, const std::string& word) {
  for (size_t i = 0; i < N; ++i)
    if (word == names[i]) return i;
  return std::nullopt;
}

template <size_t N>
std::string list_names(const std::array<const char*, N>& names) {
  std::string out;
  for (size_t i = 0; i < N; ++i) out += (i ? ", " : "") + std::string(names[i]);
  return out;
}

// A cursor over the prompt's words with grammar-error reporting.
class Parser {
 public:
  explicit Parser(std::vector<std::string> words) : words_(std::move(words)) {}

  bool done() const { return pos_ >= words_.size(); }
  const std::string& peek() const {
    static const std::string end = "";
    return done() ? end : words_[pos_];
  }
  bool accept(const char* word) {
    if (!done() && words_[pos_] == word) {
      ++pos_;
      return true;
    }
    return false;
  }
  [[noreturn]] void fail(const std::string& expected) const {
    if (done())
      FASTAR_FAIL("prompt: the phrase ends too early (after word " << pos_ << "); expected " << expected);
    FASTAR_FAIL("prompt: word " << pos_ + 1 << " '" << words_[pos_] << "': expected " << expected);
  }
  void expect(const char* word, const std::string& context) {
    if (!accept(word)) fail("'" + std::string(word) + "' " + context);
  }
  template <size_t N>
  size_t expect_one_of(const std::array<const char*, N>& names, const std::string& what) {
    if (!done())
      if (std::optional<size_t> i = find_name(names, words_[pos_])) {
        ++pos_;
        return *i;
      }
    fail(what + " (" + list_names(names) + ")");
  }
  // The phrase ends with "." or with the end of the prompt.
  void end_phrase(const std::string& what) {
    if (done() || accept(".")) return;
    fail("'.' to end " + what);
  }

 private:
  std::vector<std::string> words_;
  size_t pos_ = 0;
};

Speed parse_speed(Parser& p) {
  if (p.accept("slowly")) return Speed::Slow;
  if (p.accept("quickly")) return Speed::Fast;
  return Speed::Normal;
}

ObjectSpec parse_object(Parser& p) {
  ObjectSpec o;
  if (p.accept("small")) o.size = SizeClass::Small;
  else if (p.accept("big")) o.size = SizeClass::Big;
  o.colour = static_cast<Colour>(p.expect_one_of(kColourNames, "a colour after 'a' (or 'small'/'big' first)"));
  o.shape = static_cast<ShapeKind>(p.expect_one_of(kShapeNames, "a shape after the colour"));
  if (p.accept("enters")) {
    o.enters = true;
    p.expect("and", "after 'enters' (as in 'enters and bounces')");
  }
  if (p.accept("bounces")) {
    o.motion = Motion::Bounce;
  } else if (p.accept("drifts")) {
    o.motion = Motion::Drift;
    o.direction = static_cast<Direction>(p.expect_one_of(kDirectionNames, "a direction after 'drifts'"));
  } else if (p.accept("orbits")) {
    o.motion = Motion::Orbit;
  } else if (p.accept("stays")) {
    o.motion = Motion::Still;
  } else {
    p.fail(std::string(o.enters ? "a motion after 'enters and'" : "a motion after the shape") +
           " (bounces, drifts DIRECTION, orbits, stays)" + (o.enters ? "" : " or 'enters and'"));
  }
  if (o.motion != Motion::Still) {
    o.speed = parse_speed(p);
  } else if (p.peek() == "slowly" || p.peek() == "quickly") {
    p.fail("'then leaves' or '.' ('stays' takes no speed)");
  }
  if (p.accept("then")) {
    p.expect("leaves", "after 'then'");
    o.leaves = true;
  }
  p.end_phrase("the object phrase (a phrase reads: a [small|big] COLOUR SHAPE [enters and] MOTION [slowly|quickly] "
               "[then leaves] .)");
  return o;
}

BackgroundSpec parse_background(Parser& p) {
  BackgroundSpec b;
  b.pattern = static_cast<Pattern>(p.expect_one_of(kPatternNames, "a pattern after 'background'"));
  if (p.accept("pans")) {
    b.pans = true;
    b.direction = static_cast<Direction>(p.expect_one_of(kDirectionNames, "a direction after 'pans'"));
    b.speed = parse_speed(p);
  } else if (!p.accept("stays")) {
    p.fail("'pans DIRECTION' or 'stays' after the pattern");
  }
  p.end_phrase("the background phrase (background PATTERN pans DIRECTION [slowly|quickly] . or background PATTERN "
               "stays .)");
  return b;
}

const char* speed_word(Speed s) { return s == Speed::Slow ? " slowly" : s == Speed::Fast ? " quickly" : ""; }

}  // namespace

const char* colour_name(Colour c) { return kColourNames[static_cast<size_t>(c)]; }
const char* shape_name(ShapeKind s) { return kShapeNames[static_cast<size_t>(s)]; }
const char* direction_name(Direction d) { return kDirectionNames[static_cast<size_t>(d)]; }
const char* pattern_name(Pattern p) { return kPatternNames[static_cast<size_t>(p)]; }

SceneSpec parse_prompt(const std::string& prompt) {
  tokenize(prompt);  // unknown words, empty and over-long prompts
  Parser p(split_words(prompt));
  SceneSpec scene;
  while (!p.done()) {
    if (p.accept("a")) {
      FASTAR_CHECK(static_cast<int>(scene.objects.size()) < kMaxObjects,
                   "prompt: more than " << kMaxObjects << " objects; describe at most " << kMaxObjects);
      scene.objects.push_back(parse_object(p));
    } else if (p.accept("background")) {
      FASTAR_CHECK(!scene.has_background_phrase, "prompt: the background is described twice; give one phrase");
      scene.background = parse_background(p);
      scene.has_background_phrase = true;
    } else {
      p.fail("a phrase starting with 'a' (an object) or 'background'");
    }
  }
  FASTAR_CHECK(!scene.objects.empty(),
               "prompt: names no object; add at least one, e.g. \"a red circle bounces .\"");
  return scene;
}

std::string format_prompt(const SceneSpec& scene) {
  std::string text;
  auto add = [&](const std::string& part) { text += (text.empty() ? "" : " ") + part; };
  for (const ObjectSpec& o : scene.objects) {
    std::string phrase = "a";
    if (o.size == SizeClass::Small) phrase += " small";
    if (o.size == SizeClass::Big) phrase += " big";
    phrase += std::string(" ") + colour_name(o.colour) + " " + shape_name(o.shape);
    if (o.enters) phrase += " enters and";
    switch (o.motion) {
      case Motion::Bounce: phrase += " bounces"; break;
      case Motion::Drift: phrase += std::string(" drifts ") + direction_name(o.direction); break;
      case Motion::Orbit: phrase += " orbits"; break;
      case Motion::Still: phrase += " stays"; break;
    }
    if (o.motion != Motion::Still) phrase += speed_word(o.speed);
    if (o.leaves) phrase += " then leaves";
    add(phrase + " .");
  }
  if (scene.has_background_phrase) {
    const BackgroundSpec& b = scene.background;
    std::string phrase = std::string("background ") + pattern_name(b.pattern);
    phrase += b.pans ? std::string(" pans ") + direction_name(b.direction) + speed_word(b.speed) : " stays";
    add(phrase + " .");
  }
  return text;
}

SceneSpec sample_scene(uint64_t seed) {
  Rng rng(seed, kStreamPrompt);
  auto pick_speed = [&](double p_slow, double p_fast) {
    const double u = rng.uniform();
    return u < p_slow ? Speed::Slow : u < p_slow + p_fast ? Speed::Fast : Speed::Normal;
  };
  for (;;) {  // resample in the rare case the prompt runs past kMaxPromptTokens
    SceneSpec scene;
    const int64_t count = rng.integer(1, kMaxObjects);
    for (int64_t i = 0; i < count; ++i) {
      ObjectSpec o;
      const double u = rng.uniform();
      o.size = u < 0.25 ? SizeClass::Small : u < 0.75 ? SizeClass::Medium : SizeClass::Big;
      o.colour = static_cast<Colour>(rng.integer(0, kNumColours - 1));
      o.shape = static_cast<ShapeKind>(rng.integer(0, kNumShapes - 1));
      o.motion = static_cast<Motion>(rng.integer(0, kNumMotions - 1));
      o.direction = static_cast<Direction>(rng.integer(0, 3));
      o.speed = pick_speed(0.2, 0.2);
      if (o.motion != Motion::Drift) o.direction = Direction::Right;
      if (o.motion == Motion::Still) o.speed = Speed::Normal;
      o.enters = rng.chance(0.2);
      o.leaves = rng.chance(0.2);
      scene.objects.push_back(o);
    }
    scene.has_background_phrase = rng.chance(0.85);
    if (scene.has_background_phrase) {
      BackgroundSpec& b = scene.background;
      b.pattern = static_cast<Pattern>(rng.integer(0, kNumPatterns - 1));
      b.pans = rng.chance(0.6);
      b.direction = static_cast<Direction>(rng.integer(0, 3));
      b.speed = pick_speed(0.25, 0.25);
      if (!b.pans) {
        b.direction = Direction::Right;
        b.speed = Speed::Normal;
      }
    }
    if (split_words(format_prompt(scene)).size() <= static_cast<size_t>(kMaxPromptTokens)) return scene;
  }
}

std::string sample_prompt(uint64_t seed) { return format_prompt(sample_scene(seed)); }

}  // namespace fastar::world
