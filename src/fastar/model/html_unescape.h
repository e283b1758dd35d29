// HTML character references, decoded as the two decoders of Wan's prompt cleaning do
// (pipeline-spec.md §5.1): Python's html.unescape and ftfy's stricter unescape_html.
// Both work on code points (Python str semantics); the entity names come from
// text_clean_tables.h (the HTML5 list).
#pragma once

#include <string>

namespace fastar {

// Python's html.unescape: every "&name;", legacy "&name" without ';' (longest known prefix wins, the
// rest is kept: "&notit" -> "¬it"), "&#123;" / "&#x7B;" with or without ';'; numeric references follow
// the HTML5 rules (0 and surrogates and values > U+10FFFF -> U+FFFD, 0x80..0x9F -> Windows-1252,
// non-characters and most C0/C1 controls -> removed).
std::u32string html_unescape(const std::u32string& text);

// ftfy.fixes.unescape_html: only references that end in ';' ("&#?[0-9A-Za-z]{1,24};"), the HTML5 names
// plus upper-cased spellings of the lower-case ones ("&NTILDE;" -> "Ñ"); a numeric reference is
// decoded as html.unescape does unless that leaves a ';' behind.
std::u32string ftfy_unescape_html(const std::u32string& text);

// The Windows-1252 reading of a C1 control U+0080..U+009F (what browsers do); the five bytes that
// Windows-1252 leaves undefined map to themselves ("sloppy" Windows-1252, as ftfy and html.unescape).
char32_t windows1252_c1(char32_t c1_control);

}  // namespace fastar
