// When the sparse attention modules (AnnSA, AnnCA) run, and what they report (papers.md §1.7).
//
// Schedule: sparse attention is off for the first 30% of denoising steps (FAST-AR §6.1, after SVG)
// and on only for the chosen layers. The step is recognised by its timestep (every call carries
// each frame's timestep), so the rule also holds for Rolling Forcing, whose frames of one call sit
// at different steps: a frame is in the dense phase iff its timestep > dense_above_timestep.
// The clean context pass (timestep ≈ 0) counts as past the dense phase.
//
// Statistics (per layer, over all sparse calls): density = executed query–key products / dense
// products; recall = share of the dense softmax mass that the executed pattern keeps, averaged over
// query rows and heads. Recall needs the dense logits, so it is computed only in diagnostic mode.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace fastar {

struct SparseSchedule {
  // Frames with timestep > this run dense; +inf = no dense phase. Calls without timesteps run
  // sparse only when there is no dense phase.
  double dense_above_timestep = std::numeric_limits<double>::infinity();
  std::vector<int64_t> layers;  // sparse layers, ascending; empty = every layer

  bool layer_is_sparse(int64_t layer) const;
  // timesteps: [frames] or nullptr. True iff every frame is past the dense phase.
  bool frames_are_sparse(const float* timesteps, int64_t frames) const;
  bool frame_is_sparse(const float* timesteps, int64_t frame) const;
  std::string describe() const;
};

// The threshold that makes the first `dense_fraction` of the steps dense: step i (of S, timesteps
// descending) is dense iff i < dense_fraction·S. step_timesteps: the rollout's (warped) timesteps.
// Throws fastar::Error on a fraction outside [0, 1] or timesteps that do not decrease.
double dense_phase_threshold(const std::vector<float>& step_timesteps, double dense_fraction);

// Parses a layer list "0,2,5-9" (ascending, unique after parsing) for a model of num_layers layers;
// "all" or "" = every layer (empty vector). Throws fastar::Error naming `option` on bad input.
std::vector<int64_t> parse_layer_list(const std::string& text, int64_t num_layers, const std::string& option);

class SparseStats {
 public:
  explicit SparseStats(int64_t layers = 0) : layers_(static_cast<size_t>(layers)) {}

  // One sparse call: executed and dense query–key products; optionally the kept softmax mass
  // summed over `rows` (query·head) rows.
  void add(int64_t layer, double executed_pairs, double dense_pairs);
  void add_recall(int64_t layer, double kept_mass_sum, int64_t rows);
  void add_dense_call(int64_t layer) { at(layer).dense_calls += 1; }

  struct Layer {
    int64_t sparse_calls = 0, dense_calls = 0;
    double executed = 0, dense = 0;  // products
    double kept_mass = 0;            // Σ kept mass over recall rows
    int64_t recall_rows = 0;
    double density() const { return dense > 0 ? executed / dense : 1.0; }
    double recall() const { return recall_rows > 0 ? kept_mass / static_cast<double>(recall_rows) : -1.0; }
  };
  const Layer& layer(int64_t index) const { return layers_[static_cast<size_t>(index)]; }
  int64_t num_layers() const { return static_cast<int64_t>(layers_.size()); }
  // Totals over the layers with sparse calls (density over all their products; recall over all rows).
  Layer total() const;
  // A multi-line table "layer  calls  density  recall" plus the total, for stderr.
  std::string report(const std::string& title) const;

 private:
  Layer& at(int64_t layer);
  std::vector<Layer> layers_;
};

}  // namespace fastar
