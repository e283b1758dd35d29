// Reads typed values out of an OptionMap (core/option_spec.h) with the checks every front end needs:
// a malformed or out-of-range value is a fastar::Error naming the option as the user typed it.
#pragma once

#include <cstdint>
#include <string>

#include "fastar/core/option_spec.h"

namespace fastar {

class OptionReader {
 public:
  // who: the front end in messages ("fastar generate", "fastar.load").
  OptionReader(const OptionMap& options, std::string who) : options_(options), who_(std::move(who)) {}

  bool has(const std::string& name) const { return options_.count(name) > 0; }
  std::string get(const std::string& name, const std::string& fallback) const;
  int64_t get_int(const std::string& name, int64_t fallback, int64_t min_value, int64_t max_value) const;
  double get_double(const std::string& name, double fallback) const;
  const std::string& who() const { return who_; }

 private:
  const OptionMap& options_;
  std::string who_;
};

}  // namespace fastar
