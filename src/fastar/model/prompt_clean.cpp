#include "fastar/model/prompt_clean.h"

#include <algorithm>

#include "fastar/core/utf8.h"
#include "fastar/model/html_unescape.h"
#include "fastar/model/text_clean_tables.h"

namespace fastar {

namespace {

// ftfy.chardata.LIGATURES: Latin typographic ligatures and legacy digraphs.
struct Ligature {
  char32_t from;
  const char32_t* to;
};
constexpr Ligature kLigatures[] = {
    {0x0132, U"IJ"}, {0x0133, U"ij"}, {0x0149, U"\u02BCn"}, {0x01C4, U"D\u017D"}, {0x01C5, U"D\u017E"},
    {0x01C6, U"d\u017E"}, {0x01C7, U"LJ"}, {0x01C8, U"Lj"}, {0x01C9, U"lj"}, {0x01CA, U"NJ"}, {0x01CB, U"Nj"},
    {0x01CC, U"nj"}, {0x01F1, U"DZ"}, {0x01F2, U"Dz"}, {0x01F3, U"dz"}, {0xFB00, U"ff"}, {0xFB01, U"fi"},
    {0xFB02, U"fl"}, {0xFB03, U"ffi"}, {0xFB04, U"ffl"}, {0xFB05, U"\u017Ft"}, {0xFB06, U"st"},
};

const char32_t* ligature_of(char32_t c) {
  for (const Ligature& l : kLigatures)
    if (l.from == c) return l.to;
  return nullptr;
}

const char* width_fold_of(char32_t c) {
  using text_clean_tables::kFtfyWidthMap;
  using text_clean_tables::kFtfyWidthMapCount;
  if (c != 0x3000 && (c < 0xFF01 || c > 0xFFEF)) return nullptr;
  const auto* end = kFtfyWidthMap + kFtfyWidthMapCount;
  const auto* it = std::lower_bound(kFtfyWidthMap, end, c,
                                    [](const text_clean_tables::WidthFold& e, char32_t v) { return e.code_point < v; });
  return it != end && it->code_point == c ? it->value : nullptr;
}

// ftfy.chardata.CONTROL_CHARS.
bool is_removed_control(char32_t c) {
  return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F || (c >= 0x206A && c <= 0x206F) ||
         c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

bool is_ascii_letter(char32_t c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// The fixes below are ftfy.fixes' functions of the same names.
std::u32string fix_c1_controls(const std::u32string& text) {
  std::u32string out = text;
  for (char32_t& c : out) c = windows1252_c1(c);
  return out;
}

std::u32string fix_latin_ligatures(const std::u32string& text) {
  std::u32string out;
  out.reserve(text.size());
  for (const char32_t c : text) {
    if (const char32_t* lig = ligature_of(c)) {
      out += lig;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::u32string fix_character_width(const std::u32string& text) {
  std::u32string out;
  out.reserve(text.size());
  for (const char32_t c : text) {
    if (const char* fold = width_fold_of(c)) {
      out += utf8_decode(fold, "width table");
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::u32string uncurl_quotes(const std::u32string& text) {
  std::u32string out = text;
  for (char32_t& c : out) {
    if (c >= 0x201C && c <= 0x201F) c = '"';
    else if (c == 0x02BC || (c >= 0x2018 && c <= 0x201B)) c = '\'';
  }
  return out;
}

std::u32string fix_line_breaks(const std::u32string& text) {
  std::u32string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char32_t c = text[i];
    if (c == '\r') {
      out.push_back('\n');
      if (i + 1 < text.size() && text[i + 1] == '\n') ++i;
    } else if (c == 0x2028 || c == 0x2029 || c == 0x85) {
      out.push_back('\n');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// "\x1b[" then digits and ';' then one ASCII letter (ftfy.fixes.ANSI_RE).
std::u32string remove_terminal_escapes(const std::u32string& text) {
  std::u32string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] == 0x1B && i + 1 < text.size() && text[i + 1] == '[') {
      size_t j = i + 2;
      while (j < text.size() && ((text[j] >= '0' && text[j] <= '9') || text[j] == ';')) ++j;
      if (j < text.size() && is_ascii_letter(text[j])) {
        i = j + 1;
        continue;
      }
    }
    out.push_back(text[i++]);
  }
  return out;
}

std::u32string remove_control_chars(const std::u32string& text) {
  std::u32string out;
  out.reserve(text.size());
  for (const char32_t c : text)
    if (!is_removed_control(c)) out.push_back(c);
  return out;
}

// ftfy.fix_and_explain on one segment, without fix_encoding and NFC (see prompt_clean.h).
std::u32string fix_segment(std::u32string text, bool unescape) {
  while (true) {
    const std::u32string before = text;
    if (unescape) text = ftfy_unescape_html(text);
    text = fix_c1_controls(text);
    text = fix_latin_ligatures(text);
    text = fix_character_width(text);
    text = uncurl_quotes(text);
    text = fix_line_breaks(text);
    text = remove_terminal_escapes(text);
    text = remove_control_chars(text);
    if (text == before) return text;
  }
}

// The `regex` module's \s for str patterns.
bool is_regex_space(char32_t c) { return is_python_space(c) && !(c >= 0x1C && c <= 0x1F); }

std::u32string python_strip(const std::u32string& text) {
  size_t begin = 0, end = text.size();
  while (begin < end && is_python_space(text[begin])) ++begin;
  while (end > begin && is_python_space(text[end - 1])) --end;
  return text.substr(begin, end - begin);
}

}  // namespace

bool is_python_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

std::u32string ftfy_fix_text_subset(const std::u32string& text) {
  // ftfy.fix_text: segments end after each '\n'; HTML unescaping ("auto") stops for good at the first
  // segment that holds '<'.
  std::u32string out;
  bool unescape = true;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t newline = text.find(U'\n', pos);
    const size_t end = newline == std::u32string::npos ? text.size() : newline + 1;
    const std::u32string segment = text.substr(pos, end - pos);
    if (segment.find(U'<') != std::u32string::npos) unescape = false;
    out += fix_segment(segment, unescape);
    pos = end;
  }
  return out;
}

std::string clean_prompt_wan(const std::string& utf8_prompt) {
  std::u32string text = ftfy_fix_text_subset(utf8_decode(utf8_prompt, "prompt"));
  text = python_strip(html_unescape(html_unescape(text)));
  std::u32string collapsed;
  collapsed.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    if (is_regex_space(text[i])) {
      collapsed.push_back(' ');
      while (i < text.size() && is_regex_space(text[i])) ++i;
    } else {
      collapsed.push_back(text[i++]);
    }
  }
  return utf8_encode(python_strip(collapsed));
}

}  // namespace fastar
