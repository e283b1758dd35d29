// An option a front end offers (the CLI's --name, a Python keyword): name, value, help, default.
// The library describes its own options with it (session/policy_spec.h), so that every front end
// shows the same help text.
#pragma once

#include <map>
#include <string>

namespace fastar {

struct OptionSpec {
  std::string name;          // without dashes
  std::string value_name;    // empty = flag without value
  std::string help;
  std::string default_text;  // shown in --help
};

// Options as a plain map, name (without dashes) → value (any text for a flag, e.g. "1"): what the library parses.
using OptionMap = std::map<std::string, std::string>;

}  // namespace fastar
