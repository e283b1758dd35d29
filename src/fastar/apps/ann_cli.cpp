#include "fastar/apps/ann_cli.h"

#include <cstdio>
#include <sstream>

#include "fastar/apps/tempcache_cli.h"
#include "fastar/core/error.h"

namespace fastar::app {

AnnPolicy split_ann_policy(const std::string& policy) {
  AnnPolicy out;
  std::stringstream parts(policy);
  std::string part;
  bool first = true;
  while (std::getline(parts, part, '+')) {
    if (first) {
      FASTAR_CHECK(!part.empty() && part != "annsa" && part != "annca",
                   "fastar generate: --policy '" << policy << "' needs a cache policy first, e.g. dense+annsa or window+annca");
      out.base = part;
      first = false;
    } else if (part == "annsa" || part == "annca") {
      bool& flag = part == "annsa" ? out.annsa : out.annca;
      FASTAR_CHECK(!flag, "fastar generate: --policy '" << policy << "' names " << part << " twice");
      flag = true;
    } else {
      FASTAR_FAIL("fastar generate: unknown module '" << part << "' in --policy '" << policy
                                                      << "'; a cache policy can be followed by +annsa and/or +annca");
    }
  }
  FASTAR_CHECK(!out.base.empty(), "fastar generate: --policy is empty");
  return out;
}

const std::vector<OptionSpec>& ann_option_specs() {
  static const std::vector<OptionSpec> specs = {
      {"ann-layers", "LIST", "annsa/annca: layers made sparse, e.g. 0,2,5-9", "the model's fastar_defaults.ann_layers, else all"},
      {"ann-dense-steps", "FRACTION", "annsa/annca: first fraction of the denoising steps kept dense", "0.3"},
      {"annsa-buckets", "lsh|prompt", "annsa: LSH of q and k in a shared space, or AnnCA's prompt buckets (needs +annca)", "lsh"},
      {"annsa-bits", "B", "annsa: LSH sign bits (2^B buckets per head)", "2"},
      {"annsa-own-keys", "dense|sparse", "annsa: the chunk's own keys always attended, or bucketed too", "dense"},
      {"annsa-blocks", "BQxBK", "annsa: block-sparse tile (query rows x key rows)", "64x64 on the CPU, 128x128 on the GPU"},
      {"annca-top-k", "K", "annca with --ann quant: prompt tokens kept per query (int8 top-K)", "1"},
      {"annca-padding", "sink|drop", "annca: the identical padding rows as one key with bias log(count) (exact) or dropped", "sink"},
      {"ann-stats", "", "annsa/annca diagnostic: measure recall against dense attention (slow)", ""},
  };
  return specs;
}

std::vector<OptionSpec> annsa_option_specs() {
  std::vector<OptionSpec> out;
  for (const OptionSpec& spec : ann_option_specs())
    if (spec.name.rfind("annsa-", 0) == 0) out.push_back(spec);
  return out;
}

AnnSaOptions annsa_options_from_args(const Args& args, const std::string& device) {
  AnnSaOptions options;
  const std::string buckets = args.get("annsa-buckets", "lsh");
  FASTAR_CHECK(buckets == "lsh" || buckets == "prompt",
               "fastar: unknown --annsa-buckets '" << buckets << "'; choose lsh or prompt");
  options.buckets = buckets == "lsh" ? AnnSaBuckets::lsh : AnnSaBuckets::prompt;
  options.bits = static_cast<int>(args.get_int("annsa-bits", 2, 1, 16));
  const std::string own = args.get("annsa-own-keys", "dense");
  FASTAR_CHECK(own == "dense" || own == "sparse", "fastar: unknown --annsa-own-keys '" << own << "'; choose dense or sparse");
  options.own_keys = own == "dense" ? AnnSaOwnKeys::dense : AnnSaOwnKeys::sparse;
  const std::string blocks = args.get("annsa-blocks", device == "cuda" ? "128x128" : "64x64");
  long long bq = 0, bk = 0;
  char x = 0, rest = 0;
  FASTAR_CHECK(std::sscanf(blocks.c_str(), "%lld%c%lld%c", &bq, &x, &bk, &rest) == 3 && x == 'x' && bq > 0 && bk > 0 &&
                   bq <= 4096 && bk <= 4096,
               "fastar: --annsa-blocks must be BQxBK with positive sizes, e.g. 128x128 (got '" << blocks << "')");
  options.block_q = bq;
  options.block_k = bk;
  return options;
}

bool tempcache_options_allowed(const Args& args, const AnnPolicy& policy) {
  if (policy.base == "tempcache") return true;
  for (const OptionSpec& spec : tempcache_option_specs())
    if (args.has(spec.name) && !(spec.name == std::string("ann") && policy.any())) return false;
  return true;
}

SparseSchedule ann_schedule(const WanConfig& config, const std::vector<float>& step_timesteps, double dense_fraction,
                            const std::string& layers) {
  SparseSchedule schedule;
  schedule.dense_above_timestep = dense_phase_threshold(step_timesteps, dense_fraction);
  const std::string text = !layers.empty() ? layers : config.default_ann_layers.empty() ? "all" : config.default_ann_layers;
  schedule.layers = parse_layer_list(text, config.num_layers, "--ann-layers");
  return schedule;
}

AnnModules build_ann_modules(const Args& args, const AnnPolicy& policy, const WanConfig& config,
                             const std::vector<float>& step_timesteps, std::unique_ptr<CrossFrameMemory>* memory) {
  AnnModules modules;
  if (!policy.any()) {
    for (const OptionSpec& spec : ann_option_specs())
      FASTAR_CHECK(!args.has(spec.name), "fastar generate: --" << spec.name << " applies only with +annsa or +annca in --policy");
    return modules;
  }
  const SparseSchedule schedule =
      ann_schedule(config, step_timesteps, args.get_double("ann-dense-steps", 0.3), args.get("ann-layers", ""));
  const bool diagnostics = args.has("ann-stats");
  const std::string search = args.get("ann", "lsh");
  FASTAR_CHECK(search == "lsh" || search == "quant", "fastar generate: unknown --ann '" << search << "'; choose lsh or quant");

  for (const OptionSpec& spec : annsa_option_specs())
    FASTAR_CHECK(policy.annsa || !args.has(spec.name), "fastar generate: --annsa-* options apply only with +annsa in --policy");
  AnnSaOptions annsa = annsa_options_from_args(args, args.get("device", "cpu"));  // checks every --annsa-* value
  const bool prompt_buckets = annsa.buckets == AnnSaBuckets::prompt;
  FASTAR_CHECK(policy.annca || !args.has("annca-top-k"), "fastar generate: --annca-top-k applies only with +annca in --policy");
  FASTAR_CHECK(policy.annca || !args.has("annca-padding"), "fastar generate: --annca-padding applies only with +annca in --policy");
  const std::string padding = args.get("annca-padding", "sink");
  FASTAR_CHECK(padding == "sink" || padding == "drop", "fastar generate: --annca-padding must be sink or drop, got '" << padding << "'");
  FASTAR_CHECK(!prompt_buckets || policy.annca,
               "fastar generate: --annsa-buckets prompt reuses AnnCA's buckets: add +annca to --policy");
  if (policy.annca) {
    AnnCaOptions options;
    options.search = search == "lsh" ? AnnSearch::lsh : AnnSearch::quant;
    options.top_k = static_cast<int>(args.get_int("annca-top-k", 1, 1, 1 << 20));
    options.padding_sink = padding == "sink";
    options.schedule = schedule;
    options.diagnostics = diagnostics;
    if (policy.annsa && prompt_buckets) {
      modules.board = std::make_unique<PromptBucketBoard>();
      options.label_bits = static_cast<int>(args.get_int("annsa-bits", 2, 1, options.bits));
    }
    modules.annca = std::make_unique<AnnCrossAttention>(config.num_layers, config.num_heads, config.head_dim(), options,
                                                        modules.board.get());
  }
  if (policy.annsa) {
    annsa.schedule = schedule;
    annsa.diagnostics = diagnostics;
    auto wrapped = std::make_unique<AnnSaMemory>(std::move(*memory), config.num_layers, config.num_heads,
                                                 config.head_dim(), annsa, modules.board.get());
    modules.annsa = wrapped.get();
    *memory = std::move(wrapped);
  }
  return modules;
}

void report_ann(const AnnModules& modules) {
  if (modules.annsa) std::fputs(modules.annsa->stats().report("annsa (self-attention):").c_str(), stderr);
  if (modules.annca) std::fputs(modules.annca->stats().report(modules.annca->describe() + ":").c_str(), stderr);
}

}  // namespace fastar::app
