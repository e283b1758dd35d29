#include "fastar/session/option_reader.h"

#include <cmath>
#include <exception>

#include "fastar/core/error.h"

namespace fastar {

std::string OptionReader::get(const std::string& name, const std::string& fallback) const {
  auto it = options_.find(name);
  return it == options_.end() ? fallback : it->second;
}

int64_t OptionReader::get_int(const std::string& name, int64_t fallback, int64_t min_value, int64_t max_value) const {
  auto it = options_.find(name);
  if (it == options_.end()) return fallback;
  long long value = 0;
  size_t used = 0;
  try {
    value = std::stoll(it->second, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  FASTAR_CHECK(used == it->second.size() && used > 0,
               who_ << ": --" << name << " must be an integer, got '" << it->second << "'");
  FASTAR_CHECK(value >= min_value && value <= max_value,
               who_ << ": --" << name << " must be in [" << min_value << ", " << max_value << "], got " << value);
  return value;
}

double OptionReader::get_double(const std::string& name, double fallback) const {
  auto it = options_.find(name);
  if (it == options_.end()) return fallback;
  double value = 0;
  size_t used = 0;
  try {
    value = std::stod(it->second, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  FASTAR_CHECK(used == it->second.size() && used > 0, who_ << ": --" << name << " must be a number, got '" << it->second << "'");
  return value;
}

}  // namespace fastar
