// A small command-line parser: --name value / --name=value options and positional arguments.
// Unknown options, missing values and malformed numbers are fastar::Error with a usage hint.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "fastar/core/option_spec.h"

namespace fastar::app {

using fastar::OptionMap;
using fastar::OptionSpec;

class Args {
 public:
  // Parses argv (after the command name). --help / -h sets help().
  Args(const std::string& command, const std::vector<OptionSpec>& specs, int argc, char** argv);

  bool help() const { return help_; }
  bool has(const std::string& name) const { return values_.count(name) > 0; }
  std::string get(const std::string& name, const std::string& fallback) const;
  int64_t get_int(const std::string& name, int64_t fallback, int64_t min_value, int64_t max_value) const;
  double get_double(const std::string& name, double fallback) const;
  const std::vector<std::string>& positional() const { return positional_; }
  // Every option given, name → value ("" for flags): what the library's parsers take.
  const OptionMap& values() const { return values_; }

 private:
  std::string command_;
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
  bool help_ = false;
};

std::string format_help(const std::string& usage, const std::string& about, const std::vector<OptionSpec>& specs);

// "a,b,,c" -> {"a", "b", "c"} (empty items dropped).
std::vector<std::string> split_list(const std::string& text, char separator = ',');

// --latent-size "HxW" (positive integers, nothing else) -> height, width; fastar::Error naming `command` otherwise.
void parse_latent_size(const std::string& command, const std::string& text, int64_t* height, int64_t* width);

}  // namespace fastar::app
