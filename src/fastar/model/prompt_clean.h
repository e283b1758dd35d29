// Wan's prompt cleaning before tokenization (pipeline-spec.md §5.1; Wan's tokenizers.py with
// clean='whitespace', identical to diffusers' pipeline_wan.prompt_clean):
//
//   text = ftfy.fix_text(text); text = html.unescape(html.unescape(text)); text = text.strip()
//   text = regex.sub(r'\s+', ' ', text).strip()
//
// ftfy.fix_text (6.x, default config) is reproduced step by step, line by line as ftfy runs it, and
// repeated until nothing changes, except for two fixes:
//
//   ftfy fix (in ftfy's order)                         here
//   unescape_html ("auto": off from the first line     yes (ftfy_unescape_html; upper-case names too)
//     holding '<' on)
//   fix_encoding (mojibake: "doesnâ€™t" -> "doesn't",  NO: prompts that look like mis-decoded UTF-8
//     restore_byte_a0, replace_lossy_sequences,        (Latin-1/Windows-1252 letters such as "Ã", "â€")
//     decode_inconsistent_utf8)                        keep them and may tokenize differently from Wan
//   fix_c1_controls (U+0080..U+009F -> Windows-1252)   yes
//   fix_latin_ligatures (ﬁ -> fi, Ĳ -> IJ, ǆ -> dž)   yes (ftfy's 22-entry table)
//   fix_character_width (fullwidth/halfwidth -> NFKC,  yes (ftfy's table, text_clean_tables.h)
//     U+3000 -> space)
//   uncurl_quotes (U+02BC, U+2018..U+201B -> ',        yes
//     U+201C..U+201F -> ")
//   fix_line_breaks (\r\n, \r, U+2028, U+2029, U+0085)  yes
//   fix_surrogates                                     not needed: valid UTF-8 holds no surrogates
//   remove_terminal_escapes (ESC [ digits/; letter)    yes
//   remove_control_chars (C0 but \t\n\f\r, DEL,        yes
//     U+206A..U+206F, U+FEFF, U+FFF9..U+FFFC)
//   NFC normalization                                  NO: left to the tokenizer's own normalizer
//                                                      (SentencePiece nmt_nfkc composes as NFKC does;
//                                                      the tests check a decomposed prompt gives Wan's ids)
//   max_decode_length (1e6-character segments)         not needed for prompts
//
// Then html.unescape twice (html_unescape.h), strip (Python str.isspace set) and the whitespace collapse
// (the `regex` module's \s: str.isspace minus U+001C..U+001F, which ftfy removed already).
#pragma once

#include <string>

namespace fastar {

// The Wan-cleaned prompt, UTF-8 in and out. Throws fastar::Error for invalid UTF-8.
std::string clean_prompt_wan(const std::string& utf8_prompt);

// The ftfy.fix_text subset described above, on code points.
std::u32string ftfy_fix_text_subset(const std::u32string& text);

// Python's str.isspace() for one code point.
bool is_python_space(char32_t c);

}  // namespace fastar
