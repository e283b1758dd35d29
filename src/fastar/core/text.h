// Small string helpers shared by the layers (policy names such as "tempcache+window+annsa").
#pragma once

#include <string>
#include <string_view>

namespace fastar {

// Removes `suffix` from the end of `text` when `text` is longer than it and ends with it; says whether it did.
inline bool strip_suffix(std::string& text, std::string_view suffix) {
  if (text.size() <= suffix.size() || text.compare(text.size() - suffix.size(), suffix.size(), suffix) != 0) return false;
  text.resize(text.size() - suffix.size());
  return true;
}

}  // namespace fastar
