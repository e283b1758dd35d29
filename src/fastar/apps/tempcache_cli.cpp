#include "fastar/apps/tempcache_cli.h"

#include <cstdio>
#include <filesystem>

#include "fastar/core/error.h"

namespace fastar::app {

const std::vector<OptionSpec>& tempcache_option_specs() {
  static const std::vector<OptionSpec> specs = {
    {"tempcache-threshold", "T", "tempcache: merge a new key into its matched group when cosine >= T (> 1: never merge)", "0.9"},
    {"ann", "lsh|quant", "tempcache: nearest-neighbour search of the matches (LSH 4 tables x 10 bits, multi-probe 1 | exhaustive int8)", "lsh"},
    {"tempcache-lsh-cap", "N", "tempcache: re-rank at most N representatives per probed LSH bucket, the newest (0 = all)", "128"},
    {"tempcache-match", "key|query", "tempcache: match each new key (cosine) or its query (dot product) to the cache", "key"},
    {"tempcache-max-tokens", "N", "tempcache: at most N cached tokens per layer and head, oldest evicted (0 = no bound)", "0"},
    {"tempcache-recall", "", "tempcache diagnostic: keep a dense shadow cache and report attention recall (slow)", ""},
    {"tempcache-capacity", "N", "tempcache on --device cuda: representatives per layer and head to preallocate",
     "the run's tokens per frame x (sink + window + chunk) frames with --window, else x all frames"},
  };
  return specs;
}

bool has_tempcache_options(const Args& args) {
  for (const OptionSpec& spec : tempcache_option_specs())
    if (args.has(spec.name)) return true;
  return false;
}

std::unique_ptr<TempCacheMemory> make_tempcache_memory(const Args& args, const WanConfig& config) {
  TempCacheOptions options;
  options.threshold = static_cast<float>(args.get_double("tempcache-threshold", 0.9));
  const std::string ann = args.get("ann", "lsh");
  FASTAR_CHECK(ann == "lsh" || ann == "quant", "fastar generate: unknown --ann '" << ann << "'; choose lsh or quant");
  options.ann = ann == "lsh" ? AnnBackend::lsh : AnnBackend::quant;
  options.lsh_bucket_cap = args.get_int("tempcache-lsh-cap", options.lsh_bucket_cap, 0, INT64_MAX);
  const std::string match = args.get("tempcache-match", "key");
  FASTAR_CHECK(match == "key" || match == "query",
               "fastar generate: unknown --tempcache-match '" << match << "'; choose key or query");
  options.match = match == "key" ? TempCacheMatch::key : TempCacheMatch::query;
  options.max_tokens = args.get_int("tempcache-max-tokens", 0, 0, INT64_MAX);
  options.recall = args.has("tempcache-recall");
  if (args.has("window") || args.has("sink")) {  // composes with the window policy: merge, then evict
    options.window = args.get_int("window", 9, 0, INT64_MAX);
    options.sink = args.get_int("sink", 3, 0, INT64_MAX);
  }
  options.validate();
  return std::make_unique<TempCacheMemory>(config.num_layers, config.num_heads, config.head_dim(), options);
}

std::string tempcache_stats_path(const std::string& out) {
  std::filesystem::path path(out);
  if (path.extension() == ".mp4") return path.replace_extension(".tempcache.json").string();
  return (path / "tempcache.json").string();
}

void report_tempcache(const TempCacheMemory& memory, const std::string& out) {
  const TempCacheStats stats = memory.stats();
  const std::string path = tempcache_stats_path(out);
  write_tempcache_stats_json(path, stats, memory.options());
  std::fprintf(stderr, "%s; per layer: %s\n", format_tempcache_summary(stats).c_str(), path.c_str());
}

}  // namespace fastar::app
