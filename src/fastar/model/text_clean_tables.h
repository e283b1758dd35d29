// Data tables of the prompt cleaning (prompt_clean.h; pipeline-spec.md §5.1), generated from the
// HTML5 entity list and ftfy by tools/pipeline_golden/make_text_clean_tables.py.
#pragma once

#include <cstddef>
#include <cstdint>

namespace fastar::text_clean_tables {

struct NamedText {
  const char* name;   // without the leading '&' (e.g. "amp;", "amp", "NTILDE;")
  const char* value;  // UTF-8
};

struct WidthFold {
  uint32_t code_point;
  const char* value;  // UTF-8
};

// HTML5 named character references (html.unescape): sorted by name (byte order).
extern const NamedText kHtml5Entities[];
extern const size_t kHtml5EntityCount;
// ftfy's extra upper-case spellings (ftfy.fixes.unescape_html): sorted by name, all end in ';'.
extern const NamedText kFtfyUpperCaseEntities[];
extern const size_t kFtfyUpperCaseEntityCount;
// ftfy's width map (ftfy.fixes.fix_character_width): sorted by code point.
extern const WidthFold kFtfyWidthMap[];
extern const size_t kFtfyWidthMapCount;

}  // namespace fastar::text_clean_tables
