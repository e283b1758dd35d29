// UTF-8 <-> code points, for text processing that must follow Python's str semantics (one element per
// code point), e.g. the prompt cleaning of pipeline-spec.md §5.1.
#pragma once

#include <string>
#include <string_view>

namespace fastar {

// Decodes UTF-8. Throws fastar::Error for invalid input (bad lead or continuation bytes, overlong forms,
// surrogates, code points above U+10FFFF), naming `what` and the byte offset.
std::u32string utf8_decode(std::string_view text, std::string_view what);
// Encodes code points (all valid scalar values) as UTF-8.
std::string utf8_encode(std::u32string_view text);
void utf8_append(std::string& out, char32_t code_point);

}  // namespace fastar
