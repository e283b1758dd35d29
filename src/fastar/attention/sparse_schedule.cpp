#include "fastar/attention/sparse_schedule.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "fastar/core/error.h"

namespace fastar {

bool SparseSchedule::layer_is_sparse(int64_t layer) const {
  return layers.empty() || std::binary_search(layers.begin(), layers.end(), layer);
}

bool SparseSchedule::frame_is_sparse(const float* timesteps, int64_t frame) const {
  if (!timesteps) return dense_above_timestep == std::numeric_limits<double>::infinity();
  return static_cast<double>(timesteps[frame]) <= dense_above_timestep;
}

bool SparseSchedule::frames_are_sparse(const float* timesteps, int64_t frames) const {
  for (int64_t f = 0; f < frames; ++f)
    if (!frame_is_sparse(timesteps, f)) return false;
  return true;
}

std::string SparseSchedule::describe() const {
  std::ostringstream out;
  if (dense_above_timestep == std::numeric_limits<double>::infinity()) out << "sparse at every step";
  else out << "dense while t > " << dense_above_timestep;
  out << ", layers ";
  if (layers.empty()) {
    out << "all";
  } else {
    for (size_t i = 0; i < layers.size(); ++i) out << (i ? "," : "") << layers[i];
  }
  return out.str();
}

double dense_phase_threshold(const std::vector<float>& step_timesteps, double dense_fraction) {
  FASTAR_CHECK(dense_fraction >= 0.0 && dense_fraction <= 1.0,
               "the dense fraction of denoising steps must be in [0, 1], got " << dense_fraction);
  FASTAR_CHECK(!step_timesteps.empty(), "the denoising schedule has no steps");
  for (size_t i = 1; i < step_timesteps.size(); ++i)
    FASTAR_CHECK(step_timesteps[i] < step_timesteps[i - 1],
                 "the denoising timesteps must decrease (step " << i << ": " << step_timesteps[i] << " after "
                                                                << step_timesteps[i - 1] << ")");
  const auto steps = static_cast<int64_t>(step_timesteps.size());
  int64_t dense_steps = 0;
  while (dense_steps < steps && static_cast<double>(dense_steps) < dense_fraction * static_cast<double>(steps))
    ++dense_steps;
  if (dense_steps == 0) return std::numeric_limits<double>::infinity();
  if (dense_steps == steps) return -std::numeric_limits<double>::infinity();
  // Midway between the last dense step and the first sparse one: robust to float round-off.
  return 0.5 * (static_cast<double>(step_timesteps[static_cast<size_t>(dense_steps - 1)]) +
                static_cast<double>(step_timesteps[static_cast<size_t>(dense_steps)]));
}

std::vector<int64_t> parse_layer_list(const std::string& text, int64_t num_layers, const std::string& option) {
  std::vector<int64_t> layers;
  if (text.empty() || text == "all") return layers;
  std::stringstream items(text);
  std::string item;
  while (std::getline(items, item, ',')) {
    int64_t first = -1, last = -1;
    const size_t dash = item.find('-');
    try {
      size_t used = 0;
      if (dash == std::string::npos) {
        first = last = std::stoll(item, &used);
        if (used != item.size()) first = -1;
      } else {
        size_t used_last = 0;
        first = std::stoll(item.substr(0, dash), &used);
        last = std::stoll(item.substr(dash + 1), &used_last);
        if (used != dash || used_last != item.size() - dash - 1) first = -1;
      }
    } catch (const std::exception&) {
      first = -1;
    }
    FASTAR_CHECK(first >= 0 && last >= first && last < num_layers,
                 option << ": '" << item << "' is not a layer or range of layers in [0, " << num_layers - 1
                        << "] (write e.g. 0,2,5-9 or all)");
    for (int64_t l = first; l <= last; ++l) layers.push_back(l);
  }
  std::sort(layers.begin(), layers.end());
  layers.erase(std::unique(layers.begin(), layers.end()), layers.end());
  return layers;
}

SparseStats::Layer& SparseStats::at(int64_t layer) {
  if (layer >= static_cast<int64_t>(layers_.size())) layers_.resize(static_cast<size_t>(layer) + 1);
  return layers_[static_cast<size_t>(layer)];
}

void SparseStats::add(int64_t layer, double executed_pairs, double dense_pairs) {
  Layer& l = at(layer);
  l.sparse_calls += 1;
  l.executed += executed_pairs;
  l.dense += dense_pairs;
}

void SparseStats::add_recall(int64_t layer, double kept_mass_sum, int64_t rows) {
  Layer& l = at(layer);
  l.kept_mass += kept_mass_sum;
  l.recall_rows += rows;
}

SparseStats::Layer SparseStats::total() const {
  Layer t;
  for (const Layer& l : layers_) {
    if (l.sparse_calls == 0) continue;
    t.sparse_calls += l.sparse_calls;
    t.executed += l.executed;
    t.dense += l.dense;
    t.kept_mass += l.kept_mass;
    t.recall_rows += l.recall_rows;
  }
  for (const Layer& l : layers_) t.dense_calls += l.dense_calls;
  return t;
}

std::string SparseStats::report(const std::string& title) const {
  std::ostringstream out;
  char line[160];
  out << title << "\n  layer  sparse-calls  dense-calls  density  recall\n";
  auto row = [&](const char* name, const Layer& l) {
    char recall[32] = "-";
    if (l.recall_rows > 0) std::snprintf(recall, sizeof recall, "%.4f", l.recall());
    std::snprintf(line, sizeof line, "  %5s  %12lld  %11lld  %7.4f  %6s\n", name, static_cast<long long>(l.sparse_calls),
                  static_cast<long long>(l.dense_calls), l.density(), recall);
    out << line;
  };
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (layers_[i].sparse_calls == 0 && layers_[i].dense_calls == 0) continue;
    row(std::to_string(i).c_str(), layers_[i]);
  }
  row("all", total());
  return out.str();
}

}  // namespace fastar
