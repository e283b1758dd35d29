#include "fastar/apps/policy_cli.h"

#include "fastar/apps/tempcache_cli.h"
#include "fastar/attention/arl2_hybrid_memory.h"
#include "fastar/attention/kv_policies.h"
#include "fastar/core/error.h"

namespace fastar::app {

std::string default_policy_of(const WanConfig& config) {
  if (!config.hybrid_layers.empty()) return "arl2";
  return config.default_policy.empty() ? "dense" : config.default_policy;
}

CpuPolicy make_cpu_policy(const Args& args, const std::string& policy, const WanModel& model,
                          const std::vector<float>& step_timesteps, const std::string& command) {
  const WanConfig& config = model.config();
  CpuPolicy p;
  p.spec = policy.empty() ? default_policy_of(config) : policy;
  p.parts = split_ann_policy(p.spec);
  p.window = args.get_int("window", config.default_window >= 0 ? config.default_window : 9, 0, INT64_MAX);
  p.sink = args.get_int("sink", config.default_sink >= 0 ? config.default_sink : 3, 0, INT64_MAX);
  const std::string& base = p.parts.base;
  FASTAR_CHECK(config.hybrid_layers.empty() || base == "arl2",
               command << ": this model has ARL² hybrid layers (config 'hybrid_layers'); they run only with --policy arl2");
  FASTAR_CHECK(tempcache_options_allowed(args, p.parts),
               command << ": --tempcache-threshold/--ann/--tempcache-match/--tempcache-max-tokens/--tempcache-recall "
                          "apply only to --policy tempcache");
  // A model's own window default makes window-like policies its choice; an explicit --window with
  // plain dense is a mistake worth an error.
  const bool window_given = args.has("window") || args.has("sink");
  const int64_t layers = config.num_layers, heads = config.num_heads, hd = config.head_dim();
  if (base == "dense") {
    FASTAR_CHECK(!window_given, command << ": --window/--sink apply only to --policy window");
    p.memory = std::make_unique<DenseMemory>(layers, heads, hd);
  } else if (base == "window") {
    p.memory = std::make_unique<WindowMemory>(layers, heads, hd, p.window, p.sink);
  } else if (base == "arl2") {
    std::unique_ptr<CrossFrameMemory> inner;
    if (window_given) inner = std::make_unique<WindowMemory>(layers, heads, hd, p.window, p.sink);
    else inner = std::make_unique<DenseMemory>(layers, heads, hd);
    p.memory = std::make_unique<Arl2HybridMemory>(config, model.weights(), std::move(inner));
  } else if (base == "tempcache") {  // docs/tempcache.md; composes with --window/--sink
    auto owned = make_tempcache_memory(args, config);
    p.tempcache = owned.get();
    p.memory = std::move(owned);
  } else {
    FASTAR_FAIL(command << ": unknown --policy '" << base << "'; choose dense, window, arl2 or tempcache");
  }
  // AnnSA wraps the memory, AnnCA replaces dense cross-attention (docs/ann-attention.md).
  p.ann = build_ann_modules(args, p.parts, config, step_timesteps, &p.memory);
  return p;
}

}  // namespace fastar::app
