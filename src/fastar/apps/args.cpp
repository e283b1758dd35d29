#include "fastar/apps/args.h"

#include <sstream>

#include "fastar/core/error.h"
#include "fastar/session/option_reader.h"

namespace fastar::app {

Args::Args(const std::string& command, const std::vector<OptionSpec>& specs, int argc, char** argv) : command_(command) {
  for (int i = 0; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      help_ = true;
      continue;
    }
    if (arg.rfind("--", 0) != 0 || arg.size() == 2) {
      positional_.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2), value;
    bool inline_value = false;
    if (const size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    const OptionSpec* spec = nullptr;
    for (const OptionSpec& s : specs)
      if (s.name == name) spec = &s;
    FASTAR_CHECK(spec, "fastar " << command_ << ": unknown option --" << name << " (see fastar " << command_ << " --help)");
    if (spec->value_name.empty()) {
      FASTAR_CHECK(!inline_value, "fastar " << command_ << ": option --" << name << " takes no value");
      value = "1";
    } else if (!inline_value) {
      FASTAR_CHECK(i + 1 < argc, "fastar " << command_ << ": option --" << name << " needs a value (" << spec->value_name << ")");
      value = argv[++i];
    }
    FASTAR_CHECK(!values_.count(name), "fastar " << command_ << ": option --" << name << " given twice");
    values_[name] = value;
  }
}

std::string Args::get(const std::string& name, const std::string& fallback) const {
  return OptionReader(values_, "fastar " + command_).get(name, fallback);
}

int64_t Args::get_int(const std::string& name, int64_t fallback, int64_t min_value, int64_t max_value) const {
  return OptionReader(values_, "fastar " + command_).get_int(name, fallback, min_value, max_value);
}

double Args::get_double(const std::string& name, double fallback) const {
  return OptionReader(values_, "fastar " + command_).get_double(name, fallback);
}

std::string format_help(const std::string& usage, const std::string& about, const std::vector<OptionSpec>& specs) {
  std::ostringstream out;
  out << "usage: " << usage << "\n\n" << about << "\n\noptions:\n";
  for (const OptionSpec& s : specs) {
    std::string left = "  --" + s.name + (s.value_name.empty() ? "" : " " + s.value_name);
    if (left.size() < 28) left.resize(28, ' ');
    else left += "\n" + std::string(28, ' ');
    out << left << s.help;
    if (!s.default_text.empty()) out << " [default: " << s.default_text << "]";
    out << "\n";
  }
  out << "  --help, -h                show this help\n";
  return out.str();
}

std::vector<std::string> split_list(const std::string& text, char separator) {
  std::vector<std::string> out;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, separator))
    if (!item.empty()) out.push_back(item);
  return out;
}

void parse_latent_size(const std::string& command, const std::string& text, int64_t* height, int64_t* width) {
  const size_t x = text.find('x');
  bool ok = x != std::string::npos;
  try {
    if (ok) {
      size_t used_h = 0, used_w = 0;
      *height = std::stoll(text.substr(0, x), &used_h);
      *width = std::stoll(text.substr(x + 1), &used_w);
      ok = used_h == x && used_w == text.size() - x - 1 && *height > 0 && *width > 0;
    }
  } catch (const std::exception&) {
    ok = false;
  }
  FASTAR_CHECK(ok, command << ": --latent-size must look like 60x104 (height x width in latent pixels), got '" << text << "'");
}

}  // namespace fastar::app
