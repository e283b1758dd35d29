#include "fastar/session/policy_spec.h"

#include <cstdio>
#include <sstream>

#include "fastar/attention/sparse_schedule.h"
#include "fastar/core/error.h"
#include "fastar/session/option_reader.h"
#include "fastar/session/policy_registry.h"

namespace fastar {

const char* device_name(Device device) { return device == Device::CUDA ? "cuda" : "cpu"; }

Device parse_device(const std::string& text, const std::string& who) {
  FASTAR_CHECK(text == "cpu" || text == "cuda", who << ": unknown --device '" << text << "'; choose cpu or cuda");
  return text == "cuda" ? Device::CUDA : Device::CPU;
}

PolicyName parse_policy_name(const std::string& text, const std::string& who) {
  PolicyName out;
  std::stringstream parts(text);
  std::string part;
  bool first = true;
  while (std::getline(parts, part, '+')) {
    if (first) {
      FASTAR_CHECK(!part.empty() && part != "annsa" && part != "annca",
                   who << ": --policy '" << text << "' needs a cache policy first, e.g. dense+annsa, tempcache+window or window+annca");
      out.base = part;
      first = false;
      continue;
    }
    bool* flag = part == "window" ? &out.window : part == "annsa" ? &out.annsa : part == "annca" ? &out.annca : nullptr;
    FASTAR_CHECK(flag, who << ": unknown module '" << part << "' in --policy '" << text
                           << "'; a cache policy can be followed by +window, +annsa and/or +annca");
    FASTAR_CHECK(!*flag, who << ": --policy '" << text << "' names " << part << " twice");
    *flag = true;
  }
  FASTAR_CHECK(!out.base.empty(), who << ": --policy is empty");
  return out;
}

std::string PolicySpec::name() const {
  std::string out = base;
  if (windowed && base != "window") out += "+window";
  if (annsa) out += "+annsa";
  if (annca) out += "+annca";
  return out;
}

std::string PolicySpec::describe() const {
  std::ostringstream out;
  out << name();
  std::vector<std::string> parts;
  if (windowed) parts.push_back("window " + std::to_string(window) + ", sink " + std::to_string(sink));
  if (base == "tempcache") {
    char tau[48];
    std::snprintf(tau, sizeof tau, "tau %.3g, %s", static_cast<double>(tempcache.threshold), ann_backend_name(tempcache.ann));
    parts.push_back(tau);
  }
  if (annsa) parts.push_back("annsa " + std::to_string(annsa_options.bits) + " bits, " + std::to_string(annsa_options.block_q) + "x" +
                             std::to_string(annsa_options.block_k) + " blocks");
  if (annca) parts.push_back(std::string("annca ") + ann_search_name(annca_options.search));
  for (size_t i = 0; i < parts.size(); ++i) out << (i ? ", " : " (") << parts[i];
  if (!parts.empty()) out << ")";
  return out.str();
}

const std::vector<OptionSpec>& policy_option_specs() {
  static const std::vector<OptionSpec> specs = {
      {"window", "W", "window policies (window, +window, and --window alone with tempcache/arl2): recent latent frames kept",
       "the model's fastar_defaults, else 9"},
      {"sink", "S", "window policies: first latent frames kept as an attention sink", "the model's fastar_defaults, else 3"},
      {"tempcache-threshold", "T", "tempcache: merge a new key into its matched group when cosine >= T (> 1: never merge)", "0.9"},
      {"ann", "lsh|quant", "tempcache and annca: nearest-neighbour search (LSH | exhaustive int8)", "lsh"},
      {"tempcache-lsh-cap", "N", "tempcache: re-rank at most N representatives per probed LSH bucket, the newest (0 = all)", "128"},
      {"tempcache-match", "key|query", "tempcache: match each new key (cosine) or its query (dot product) to the cache", "key"},
      {"tempcache-max-tokens", "N", "tempcache: at most N cached tokens per layer and head, oldest evicted (0 = no bound)", "0"},
      {"tempcache-recall", "", "tempcache diagnostic: keep a dense shadow cache and report attention recall (slow, CPU)", ""},
      {"tempcache-capacity", "N", "tempcache on --device cuda: representatives per layer and head to preallocate",
       "tokens per frame x (sink + window + chunk) frames when windowed, else x all frames"},
      {"ann-layers", "LIST", "annsa/annca: layers made sparse, e.g. 0,2,5-9", "the model's fastar_defaults.ann_layers, else all"},
      {"ann-dense-steps", "FRACTION", "annsa/annca: first fraction of the denoising steps kept dense", "0.3"},
      {"annsa-buckets", "lsh|prompt", "annsa: LSH of q and k in a shared space, or AnnCA's prompt buckets (needs +annca, CPU)", "lsh"},
      {"annsa-bits", "B", "annsa: LSH sign bits (2^B buckets per head)", "2"},
      {"annsa-own-keys", "dense|sparse", "annsa: the chunk's own keys always attended, or bucketed too", "dense"},
      {"annsa-blocks", "BQxBK", "annsa: block-sparse tile (query rows x key rows)", "64x64 on the CPU, 128x128 on the GPU"},
      {"annca-top-k", "K", "annca with --ann quant: prompt tokens kept per query (int8 top-K)", "1"},
      {"annca-padding", "sink|drop", "annca: the identical padding rows as one key with bias log(count) (exact) or dropped", "sink"},
      {"ann-stats", "", "annsa/annca diagnostic: measure recall against dense attention (slow, CPU)", ""},
  };
  return specs;
}

bool is_policy_option(const std::string& name) {
  for (const OptionSpec& spec : policy_option_specs())
    if (spec.name == name) return true;
  return false;
}

std::string default_policy_of(const WanConfig& config) {
  if (!config.hybrid_layers.empty()) return "arl2";
  return config.default_policy.empty() ? "dense" : config.default_policy;
}

namespace {

bool starts_with(const std::string& text, const char* prefix) { return text.rfind(prefix, 0) == 0; }

TempCacheOptions tempcache_options(const OptionReader& in) {
  TempCacheOptions options;
  options.threshold = static_cast<float>(in.get_double("tempcache-threshold", 0.9));
  const std::string ann = in.get("ann", "lsh");
  FASTAR_CHECK(ann == "lsh" || ann == "quant", in.who() << ": unknown --ann '" << ann << "'; choose lsh or quant");
  options.ann = ann == "lsh" ? AnnBackend::lsh : AnnBackend::quant;
  options.lsh_bucket_cap = in.get_int("tempcache-lsh-cap", options.lsh_bucket_cap, 0, INT64_MAX);
  const std::string match = in.get("tempcache-match", "key");
  FASTAR_CHECK(match == "key" || match == "query", in.who() << ": unknown --tempcache-match '" << match << "'; choose key or query");
  options.match = match == "key" ? TempCacheMatch::key : TempCacheMatch::query;
  options.max_tokens = in.get_int("tempcache-max-tokens", 0, 0, INT64_MAX);
  options.recall = in.has("tempcache-recall");
  return options;
}

AnnSaOptions annsa_options(const OptionReader& in, Device device) {
  AnnSaOptions options;
  const std::string buckets = in.get("annsa-buckets", "lsh");
  FASTAR_CHECK(buckets == "lsh" || buckets == "prompt", in.who() << ": unknown --annsa-buckets '" << buckets << "'; choose lsh or prompt");
  options.buckets = buckets == "lsh" ? AnnSaBuckets::lsh : AnnSaBuckets::prompt;
  options.bits = static_cast<int>(in.get_int("annsa-bits", 2, 1, 16));
  const std::string own = in.get("annsa-own-keys", "dense");
  FASTAR_CHECK(own == "dense" || own == "sparse", in.who() << ": unknown --annsa-own-keys '" << own << "'; choose dense or sparse");
  options.own_keys = own == "dense" ? AnnSaOwnKeys::dense : AnnSaOwnKeys::sparse;
  // GPU: the Hopper kernel's 128x128 tiles (128x64 would fall back to the mma.sync kernel).
  const std::string blocks = in.get("annsa-blocks", device == Device::CUDA ? "128x128" : "64x64");
  long long bq = 0, bk = 0;
  char x = 0, rest = 0;
  FASTAR_CHECK(std::sscanf(blocks.c_str(), "%lld%c%lld%c", &bq, &x, &bk, &rest) == 3 && x == 'x' && bq > 0 && bk > 0 &&
                   bq <= 4096 && bk <= 4096,
               in.who() << ": --annsa-blocks must be BQxBK with positive sizes, e.g. 128x128 (got '" << blocks << "')");
  options.block_q = bq;
  options.block_k = bk;
  return options;
}

}  // namespace

PolicySpec resolve_policy(const std::string& policy, const OptionMap& options, const WanConfig& config,
                          const std::vector<float>& step_timesteps, Device device, const std::string& who) {
  const OptionReader in(options, who);
  const std::string text = policy.empty() ? default_policy_of(config) : policy;
  const PolicyName name = parse_policy_name(text, who);
  const PolicyEntry& entry = find_policy_entry(name.base, who);
  PolicySpec spec;
  spec.base = name.base;
  spec.annsa = name.annsa;
  spec.annca = name.annca;
  FASTAR_CHECK(config.hybrid_layers.empty() || spec.base == "arl2",
               who << ": this model has ARL² hybrid layers (config 'hybrid_layers'); they run only with --policy arl2");
  FASTAR_CHECK(!spec.annsa || entry.annsa_wraps,
               who << ": annsa wraps dense, window or tempcache, not " << spec.base);

  // Window: +window, --window/--sink, or the window policy itself; values from the options, then the
  // model's fastar_defaults, then the library's.
  const bool window_given = in.has("window") || in.has("sink");
  spec.windowed = name.window || window_given || entry.always_windowed;
  FASTAR_CHECK(!spec.windowed || entry.windowable,
               who << ": --window/--sink and +window apply only to --policy window, tempcache or arl2; " << spec.base
                   << " keeps every frame (use --policy window for a sliding window)");
  if (spec.windowed) {
    spec.window = in.get_int("window", config.default_window >= 0 ? config.default_window : kDefaultWindow, 0, INT64_MAX / 4);
    spec.sink = in.get_int("sink", config.default_sink >= 0 ? config.default_sink : kDefaultSink, 0, INT64_MAX / 4);
  }

  // TempCache's options: only with a tempcache base (--ann also serves AnnCA's search).
  const bool modules = spec.annsa || spec.annca;
  for (const OptionSpec& option : policy_option_specs()) {
    if (!in.has(option.name)) continue;
    const bool tempcache_option = starts_with(option.name, "tempcache-") || option.name == "ann";
    if (tempcache_option)
      FASTAR_CHECK(spec.base == "tempcache" || (option.name == "ann" && modules),
                   who << ": --" << option.name << ": TempCache's options apply only to --policy tempcache"
                       << (option.name == "ann" ? " (--ann also to +annsa/+annca)" : ""));
    if (starts_with(option.name, "annsa-"))
      FASTAR_CHECK(spec.annsa, who << ": --" << option.name << " applies only with +annsa in --policy");
    if (starts_with(option.name, "annca-"))
      FASTAR_CHECK(spec.annca, who << ": --" << option.name << " applies only with +annca in --policy");
    if (option.name == "ann-layers" || option.name == "ann-dense-steps" || option.name == "ann-stats")
      FASTAR_CHECK(modules, who << ": --" << option.name << " applies only with +annsa or +annca in --policy");
  }
  if (spec.base == "tempcache") {
    spec.tempcache = tempcache_options(in);
    if (spec.windowed) {  // merge, then evict (docs/tempcache.md)
      spec.tempcache.window = spec.window;
      spec.tempcache.sink = spec.sink;
    }
    spec.tempcache.validate();
    spec.tempcache_capacity = in.get_int("tempcache-capacity", 0, 0, INT64_MAX / 4);
  }

  // AnnSA and AnnCA share one schedule: dense for the first fraction of the steps, sparse on the layers
  // given, else the model's measured choice (fastar_defaults.ann_layers), else all.
  spec.annsa_options = annsa_options(in, device);  // checks every --annsa-* value
  if (modules) {
    SparseSchedule schedule;
    const double dense_fraction = in.get_double("ann-dense-steps", 0.3);
    FASTAR_CHECK(dense_fraction >= 0 && dense_fraction <= 1, who << ": --ann-dense-steps must be in [0, 1], got " << dense_fraction);
    schedule.dense_above_timestep = dense_phase_threshold(step_timesteps, dense_fraction);
    const std::string layers = in.get("ann-layers", config.default_ann_layers.empty() ? "all" : config.default_ann_layers);
    schedule.layers = parse_layer_list(layers, config.num_layers, "--ann-layers");
    const bool diagnostics = in.has("ann-stats");
    spec.annsa_options.schedule = schedule;
    spec.annsa_options.diagnostics = diagnostics;
    FASTAR_CHECK(spec.annsa_options.buckets != AnnSaBuckets::prompt || spec.annca,
                 who << ": --annsa-buckets prompt reuses AnnCA's buckets: add +annca to --policy");
    AnnCaOptions& annca = spec.annca_options;
    annca.search = in.get("ann", "lsh") == "quant" ? AnnSearch::quant : AnnSearch::lsh;
    annca.top_k = static_cast<int>(in.get_int("annca-top-k", 1, 1, 1 << 20));
    const std::string padding = in.get("annca-padding", "sink");
    FASTAR_CHECK(padding == "sink" || padding == "drop", who << ": --annca-padding must be sink or drop, got '" << padding << "'");
    annca.padding_sink = padding == "sink";
    annca.schedule = schedule;
    annca.diagnostics = diagnostics;
    if (spec.annsa && spec.annsa_options.buckets == AnnSaBuckets::prompt)
      annca.label_bits = static_cast<int>(in.get_int("annsa-bits", 2, 1, annca.bits));
  }
  return spec;
}

}  // namespace fastar
