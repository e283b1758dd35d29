#include "fastar/model/html_unescape.h"

#include <algorithm>
#include <cstring>
#include <string_view>

#include "fastar/core/utf8.h"
#include "fastar/model/text_clean_tables.h"

namespace fastar {

namespace {

using text_clean_tables::NamedText;

// Looks `name` (ASCII, without '&') up in a table sorted by name; nullptr if absent.
const char* find_named(const NamedText* table, size_t count, std::string_view name) {
  const NamedText* end = table + count;
  const NamedText* it = std::lower_bound(table, end, name, [](const NamedText& e, std::string_view n) {
    return std::string_view(e.name) < n;
  });
  return it != end && std::string_view(it->name) == name ? it->value : nullptr;
}

const char* find_html5(std::string_view name) {
  return find_named(text_clean_tables::kHtml5Entities, text_clean_tables::kHtml5EntityCount, name);
}

void append_utf8(std::u32string& out, const char* utf8) {
  out += utf8_decode(utf8, "HTML entity table");
}

bool is_ascii_digit(char32_t c) { return c >= '0' && c <= '9'; }
bool is_ascii_hex(char32_t c) { return is_ascii_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool is_ascii_alnum(char32_t c) { return is_ascii_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// Code points html.unescape drops when they are written as numeric references.
bool is_dropped_code_point(uint64_t n) {
  return (n >= 0x1 && n <= 0x8) || n == 0xB || (n >= 0xE && n <= 0x1F) || (n >= 0x7F && n <= 0x9F) ||
         (n >= 0xFDD0 && n <= 0xFDEF) || (n & 0xFFFE) == 0xFFFE;
}

// The text a numeric reference with value n stands for (Python's html._replace_charref).
void append_numeric(std::u32string& out, uint64_t n) {
  if (n == 0) return out.push_back(0xFFFD);
  if (n == 0x0D) return out.push_back(U'\r');
  if (n >= 0x80 && n <= 0x9F) return out.push_back(windows1252_c1(static_cast<char32_t>(n)));
  if ((n >= 0xD800 && n <= 0xDFFF) || n > 0x10FFFF) return out.push_back(0xFFFD);
  if (is_dropped_code_point(n)) return;
  out.push_back(static_cast<char32_t>(n));
}

// Characters a name of html.unescape's pattern may hold: anything but \t \n \f space < & # ;
bool is_name_char(char32_t c) {
  return c != '\t' && c != '\n' && c != '\f' && c != ' ' && c != '<' && c != '&' && c != '#' && c != ';';
}

// Tries html.unescape's pattern at text[amp] == '&'. On a match appends the replacement, sets *next past
// the match and returns true.
bool unescape_at(const std::u32string& text, size_t amp, std::u32string& out, size_t* next) {
  const size_t n = text.size();
  size_t i = amp + 1;
  if (i < n && text[i] == '#') {
    const bool hex = i + 1 < n && (text[i + 1] == 'x' || text[i + 1] == 'X');
    size_t digits = i + (hex ? 2 : 1);
    size_t end = digits;
    uint64_t value = 0;
    while (end < n && (hex ? is_ascii_hex(text[end]) : is_ascii_digit(text[end]))) {
      const char32_t c = text[end];
      const uint64_t d = is_ascii_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10;
      value = std::min<uint64_t>(value * (hex ? 16 : 10) + d, 0x7FFFFFFF);  // anything > U+10FFFF is U+FFFD
      ++end;
    }
    if (end == digits) {
      // "&#x" without hex digits: the decimal branch also failed ('x' is no digit); '#' cannot start a name.
      return false;
    }
    if (end < n && text[end] == ';') ++end;
    append_numeric(out, value);
    *next = end;
    return true;
  }
  size_t end = i;
  while (end < n && end - i < 32 && is_name_char(text[end])) ++end;
  if (end == i) return false;
  const bool semicolon = end < n && text[end] == ';';
  std::u32string name(text.begin() + static_cast<std::ptrdiff_t>(i), text.begin() + static_cast<std::ptrdiff_t>(end));
  if (semicolon) name.push_back(';');
  *next = end + (semicolon ? 1 : 0);
  const std::string name_utf8 = utf8_encode(name);
  if (const char* value = find_html5(name_utf8)) {
    append_utf8(out, value);
    return true;
  }
  // The longest known prefix of at least 2 characters (only legacy names, which have no ';').
  for (size_t len = name.size() - 1; len >= 2; --len) {
    if (const char* value = find_html5(utf8_encode(name.substr(0, len)))) {
      append_utf8(out, value);
      out.append(name, len, std::u32string::npos);
      return true;
    }
  }
  out.push_back('&');
  out += name;
  return true;
}

}  // namespace

char32_t windows1252_c1(char32_t c) {
  static const char32_t kTable[32] = {0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
                                      0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D, 0x017D, 0x008F,
                                      0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
                                      0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178};
  return c >= 0x80 && c <= 0x9F ? kTable[c - 0x80] : c;
}

std::u32string html_unescape(const std::u32string& text) {
  if (text.find(U'&') == std::u32string::npos) return text;
  std::u32string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    size_t next = 0;
    if (text[i] == '&' && unescape_at(text, i, out, &next)) {
      i = next;
    } else {
      out.push_back(text[i++]);
    }
  }
  return out;
}

std::u32string ftfy_unescape_html(const std::u32string& text) {
  std::u32string out;
  out.reserve(text.size());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    if (text[i] != '&') {
      out.push_back(text[i++]);
      continue;
    }
    // "&#?[0-9A-Za-z]{1,24};": the run of letters and digits must be followed by ';' directly.
    size_t start = i + 1;
    if (start < n && text[start] == '#') ++start;
    size_t end = start;
    while (end < n && is_ascii_alnum(text[end])) ++end;
    const size_t run = end - start;
    if (run < 1 || run > 24 || end >= n || text[end] != ';') {
      out.push_back(text[i++]);
      continue;
    }
    const std::u32string entity = text.substr(i, end + 1 - i);  // "&...;"
    const std::string name = utf8_encode(entity.substr(1));     // ASCII
    const char* value = find_html5(name);
    if (!value)
      value = find_named(text_clean_tables::kFtfyUpperCaseEntities, text_clean_tables::kFtfyUpperCaseEntityCount, name);
    if (value) {
      append_utf8(out, value);
    } else if (entity[1] == '#') {
      const std::u32string decoded = html_unescape(entity);
      out += decoded.find(U';') == std::u32string::npos ? decoded : entity;
    } else {
      out += entity;
    }
    i = end + 1;
  }
  return out;
}

}  // namespace fastar
