#include "fastar/core/utf8.h"

#include "fastar/core/error.h"

namespace fastar {

std::u32string utf8_decode(std::string_view text, std::string_view what) {
  std::u32string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    int extra = 0;
    char32_t cp = 0;
    char32_t min_value = 0;
    if (lead < 0x80) {
      cp = lead;
    } else if ((lead & 0xE0) == 0xC0) {
      extra = 1, cp = lead & 0x1F, min_value = 0x80;
    } else if ((lead & 0xF0) == 0xE0) {
      extra = 2, cp = lead & 0x0F, min_value = 0x800;
    } else if ((lead & 0xF8) == 0xF0) {
      extra = 3, cp = lead & 0x07, min_value = 0x10000;
    } else {
      FASTAR_FAIL(what << ": invalid UTF-8 (byte 0x" << std::hex << int(lead) << std::dec << " at offset " << i
                       << "); pass the text as UTF-8");
    }
    FASTAR_CHECK(i + static_cast<size_t>(extra) < text.size(),
                 what << ": invalid UTF-8 (truncated sequence at offset " << i << "); pass the text as UTF-8");
    for (int k = 1; k <= extra; ++k) {
      const auto byte = static_cast<unsigned char>(text[i + k]);
      FASTAR_CHECK((byte & 0xC0) == 0x80, what << ": invalid UTF-8 (bad continuation byte at offset " << i + k
                                               << "); pass the text as UTF-8");
      cp = (cp << 6) | (byte & 0x3F);
    }
    FASTAR_CHECK(cp >= min_value && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF),
                 what << ": invalid UTF-8 (overlong form, surrogate or value above U+10FFFF at offset " << i
                      << "); pass the text as UTF-8");
    out.push_back(cp);
    i += static_cast<size_t>(extra) + 1;
  }
  return out;
}

void utf8_append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string utf8_encode(std::u32string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char32_t cp : text) utf8_append(out, cp);
  return out;
}

}  // namespace fastar
