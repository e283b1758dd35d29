// The `fastar generate` options of the TempCache policy (docs/tempcache.md): parsing into
// TempCacheOptions and the end-of-run report (summary line + per-layer JSON beside the output).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "fastar/apps/args.h"
#include "fastar/attention/tempcache_memory.h"
#include "fastar/model/wan_config.h"

namespace fastar::app {

// --tempcache-threshold, --ann, --tempcache-match, --tempcache-max-tokens, --tempcache-recall.
const std::vector<OptionSpec>& tempcache_option_specs();

// True if any TempCache-only option was given (an error with another policy).
bool has_tempcache_options(const Args& args);

// The policy from the options, composed with --window/--sink when given. Throws fastar::Error on bad values.
std::unique_ptr<TempCacheMemory> make_tempcache_memory(const Args& args, const WanConfig& config);

// Where the per-layer statistics go: OUT.mp4 → OUT.tempcache.json; a PNG folder → DIR/tempcache.json.
std::string tempcache_stats_path(const std::string& out);

// Prints the overall figures to stderr and writes the per-layer JSON (atomically) beside `out`.
void report_tempcache(const TempCacheMemory& memory, const std::string& out);

}  // namespace fastar::app
