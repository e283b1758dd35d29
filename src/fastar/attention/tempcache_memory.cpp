#include "fastar/attention/tempcache_memory.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "fastar/core/error.h"
#include "fastar/kernels/cpu/attention.h"

namespace fastar {

struct TempCacheMemory::Shadow {
  std::vector<float> keys;          // [tokens, head_dim], every committed key
  std::vector<int64_t> group;       // [tokens], the group each joined
};

TempCacheMemory::TempCacheMemory(int64_t layers, int64_t heads, int64_t head_dim, const TempCacheOptions& options)
    : layers_(layers), heads_(heads), head_dim_(head_dim), options_(options) {
  options_.validate();
  FASTAR_CHECK(layers > 0 && heads > 0 && head_dim > 0, "tempcache: layers, heads and head_dim must be > 0");
  if (options_.ann == AnnBackend::lsh) {
    LshParams params;
    params.dim = head_dim;
    params.tables = options_.lsh_tables;
    params.bits = options_.lsh_bits;
    params.seed = options_.seed;
    hasher_ = std::make_unique<LshHasher>(params);
  }
  heads_state_.reserve(static_cast<size_t>(layers * heads));
  for (int64_t i = 0; i < layers * heads; ++i) heads_state_.emplace_back(head_dim, options_, hasher_.get());
  first_frame_.assign(static_cast<size_t>(layers), -1);
  recall_sum_.assign(static_cast<size_t>(layers), 0.0);
  recall_count_.assign(static_cast<size_t>(layers), 0);
  if (options_.recall) shadows_.resize(static_cast<size_t>(layers * heads));
}

TempCacheMemory::~TempCacheMemory() = default;

const TempCacheHead& TempCacheMemory::head(int64_t layer, int64_t h) const {
  FASTAR_ASSERT(layer >= 0 && layer < layers_ && h >= 0 && h < heads_, "TempCacheMemory::head: out of range");
  return heads_state_[static_cast<size_t>(layer * heads_ + h)];
}

void TempCacheMemory::attend(int64_t layer, const MemoryCall& call, const float* q, const float* k, const float* v,
                             float* out) {
  FASTAR_ASSERT(layer >= 0 && layer < layers_, "tempcache: layer out of range");
  const int64_t d = head_dim_, row = heads_ * head_dim_;
  const int64_t tokens = call.num_frames * call.tokens_per_frame;
  tokens_per_frame_ = call.tokens_per_frame;
  if (options_.recall && out) measure_recall(layer, q, k, tokens);

  // Attention per head over [representatives + this call's keys], bias [log m, 0 for the call's keys].
  // out == nullptr: a wrapping policy (AnnSA) attends itself through cached_kv(); only commit here.
  std::vector<float> kbuf, vbuf, bias;
  for (int64_t h = 0; h < heads_ && out; ++h) {
    const TempCacheHead& state = heads_state_[static_cast<size_t>(layer * heads_ + h)];
    const int64_t n = state.size(), kv = n + tokens;
    kbuf.resize(static_cast<size_t>(kv * d));
    vbuf.resize(static_cast<size_t>(kv * d));
    bias.assign(static_cast<size_t>(kv), 0.0f);
    std::memcpy(kbuf.data(), state.keys(), static_cast<size_t>(n * d) * sizeof(float));
    std::memcpy(vbuf.data(), state.values(), static_cast<size_t>(n * d) * sizeof(float));
    std::memcpy(bias.data(), state.log_counts(), static_cast<size_t>(n) * sizeof(float));
    for (int64_t t = 0; t < tokens; ++t) {
      std::memcpy(kbuf.data() + (n + t) * d, k + t * row + h * d, static_cast<size_t>(d) * sizeof(float));
      std::memcpy(vbuf.data() + (n + t) * d, v + t * row + h * d, static_cast<size_t>(d) * sizeof(float));
    }
    AttentionParams p = packed_attention_params(q + h * d, kbuf.data(), vbuf.data(), out + h * d, tokens, kv, 1, d);
    p.q_row_stride = p.o_row_stride = row;
    p.k_row_stride = p.v_row_stride = d;
    p.key_bias = bias.data();
    cpu::attention_forward(p);
  }
  if (!call.commit) return;

  // Merge the chunk frame by frame (each frame sees the groups of the frames before it), then bound.
  int64_t& first = first_frame_[static_cast<size_t>(layer)];
  if (first < 0) first = call.frame_start;
  std::vector<std::exception_ptr> errors(static_cast<size_t>(heads_));  // exceptions must not leave the parallel loop
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t h = 0; h < heads_; ++h) {
    try {
      commit_head(layer, h, call, q, k, v);
    } catch (...) {
      errors[static_cast<size_t>(h)] = std::current_exception();
    }
  }
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
}

bool TempCacheMemory::cached_kv(int64_t layer, int64_t head, CachedKvHead* out) const {
  const TempCacheHead& state = heads_state_[static_cast<size_t>(layer * heads_ + head)];
  out->k = state.keys();
  out->v = state.values();
  out->k_row_stride = out->v_row_stride = head_dim_;
  out->key_bias = state.log_counts();
  out->tokens = state.size();
  return true;
}

void TempCacheMemory::commit_head(int64_t layer, int64_t h, const MemoryCall& call, const float* q, const float* k,
                                  const float* v) {
  const int64_t d = head_dim_, row = heads_ * head_dim_, tpf = call.tokens_per_frame;
  const int64_t first = first_frame_[static_cast<size_t>(layer)];
  TempCacheHead& state = heads_state_[static_cast<size_t>(layer * heads_ + h)];
  std::vector<int64_t> groups;
  for (int64_t f = 0; f < call.num_frames; ++f) {
    const int64_t frame = call.frame_start + f;
    const int64_t offset = f * tpf * row + h * d;
    state.commit_frame(k + offset, v + offset, q + offset, row, tpf, frame, frame < first + options_.sink,
                       options_.recall ? &groups : nullptr);
    if (options_.recall) {
      Shadow& shadow = shadows_[static_cast<size_t>(layer * heads_ + h)];
      for (int64_t t = 0; t < tpf; ++t) shadow.keys.insert(shadow.keys.end(), k + offset + t * row, k + offset + t * row + d);
      shadow.group.insert(shadow.group.end(), groups.begin(), groups.end());
    }
  }
  state.evict(call.frame_start + call.num_frames - 1);
}

// Recall of this call's queries against the cache as it stands (papers.md §1.2 recall, adapted to
// groups; definition in tempcache_memory.h and docs/tempcache.md). Double precision throughout.
// The shadow keeps keys only: recall compares attention weights, not outputs.
void TempCacheMemory::measure_recall(int64_t layer, const float* q, const float* k, int64_t tokens) {
  const int64_t d = head_dim_, row = heads_ * head_dim_;
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  double sum = 0.0;
  for (int64_t h = 0; h < heads_; ++h) {
    const TempCacheHead& state = heads_state_[static_cast<size_t>(layer * heads_ + h)];
    const Shadow& shadow = shadows_[static_cast<size_t>(layer * heads_ + h)];
    const int64_t n = state.size();
    const int64_t s = static_cast<int64_t>(shadow.group.size());
    // Slot of each group id (−1: evicted).
    int64_t max_id = -1;
    for (int64_t id : shadow.group) max_id = std::max(max_id, id);
    std::vector<int32_t> slot_of(static_cast<size_t>(max_id + 1), -1);
    for (int64_t slot = 0; slot < n; ++slot) {
      const int64_t id = state.group_ids()[static_cast<size_t>(slot)];
      if (id <= max_id) slot_of[static_cast<size_t>(id)] = static_cast<int32_t>(slot);
    }
#pragma omp parallel reduction(+ : sum)
    {
      std::vector<double> dense(static_cast<size_t>(s + tokens)), cache(static_cast<size_t>(n + tokens));
      std::vector<double> group_mass(static_cast<size_t>(n));
#pragma omp for schedule(static)
      for (int64_t i = 0; i < tokens; ++i) {
        const float* qi = q + i * row + h * d;
        auto logit = [&](const float* key) {
          double acc = 0.0;
          for (int64_t j = 0; j < d; ++j) acc += static_cast<double>(qi[j]) * key[j];
          return acc * scale;
        };
        // Dense: every committed key, then the call's keys. Cache: representatives (+ log m), then the call's keys.
        for (int64_t j = 0; j < s; ++j) dense[static_cast<size_t>(j)] = logit(shadow.keys.data() + j * d);
        for (int64_t j = 0; j < n; ++j)
          cache[static_cast<size_t>(j)] = logit(state.keys() + j * d) + std::log(static_cast<double>(state.counts()[static_cast<size_t>(j)]));
        for (int64_t t = 0; t < tokens; ++t) {
          const double c = logit(k + t * row + h * d);
          dense[static_cast<size_t>(s + t)] = c;
          cache[static_cast<size_t>(n + t)] = c;
        }
        auto normalise = [](std::vector<double>& x) {
          const double mx = *std::max_element(x.begin(), x.end());
          double z = 0.0;
          for (double& e : x) z += (e = std::exp(e - mx));
          for (double& e : x) e /= z;
        };
        normalise(dense);
        normalise(cache);
        std::fill(group_mass.begin(), group_mass.end(), 0.0);
        for (int64_t j = 0; j < s; ++j) {
          const int32_t slot = slot_of[static_cast<size_t>(shadow.group[static_cast<size_t>(j)])];
          if (slot >= 0) group_mass[static_cast<size_t>(slot)] += dense[static_cast<size_t>(j)];
        }
        double kept = 0.0;
        for (int64_t g = 0; g < n; ++g) kept += std::min(group_mass[static_cast<size_t>(g)], cache[static_cast<size_t>(g)]);
        for (int64_t t = 0; t < tokens; ++t)
          kept += std::min(dense[static_cast<size_t>(s + t)], cache[static_cast<size_t>(n + t)]);
        sum += kept;
      }
    }
  }
  recall_sum_[static_cast<size_t>(layer)] += sum;
  recall_count_[static_cast<size_t>(layer)] += heads_ * tokens;
}

int64_t TempCacheMemory::cached_frames(int64_t layer) const {
  if (tokens_per_frame_ <= 0) return 0;
  int64_t reps = 0;
  for (int64_t h = 0; h < heads_; ++h) reps += head(layer, h).size();
  const int64_t per_frame = heads_ * tokens_per_frame_;
  return (reps + per_frame - 1) / per_frame;
}

int64_t TempCacheMemory::bytes() const {
  int64_t total = 0;
  for (const TempCacheHead& state : heads_state_) total += state.bytes();
  return total;
}

std::string TempCacheMemory::describe() const {
  std::ostringstream out;
  out << "tempcache (threshold " << options_.threshold << ", " << tempcache_match_name(options_.match) << " match via "
      << ann_backend_name(options_.ann);
  if (options_.ann == AnnBackend::lsh)
    out << " " << options_.lsh_tables << "x" << options_.lsh_bits << " bits, multi-probe " << options_.lsh_multi_probe
        << ", bucket cap " << options_.lsh_bucket_cap;
  else
    out << " int8";
  if (options_.window >= 0) out << "; window " << options_.window << " frames + " << options_.sink << " sink frames";
  if (options_.max_tokens > 0) out << "; at most " << options_.max_tokens << " tokens/head";
  if (options_.recall) out << "; recall diagnostic";
  out << ")";
  return out.str();
}

TempCacheStats TempCacheMemory::stats() const {
  TempCacheStats stats;
  double total_cached = 0.0, total_recall = 0.0;
  int64_t total_dense = 0, total_samples = 0;
  for (int64_t l = 0; l < layers_; ++l) {
    TempCacheLayerStats s;
    int64_t reps = 0;
    for (int64_t h = 0; h < heads_; ++h) {
      const TempCacheHead& state = head(l, h);
      reps += state.size();
      s.merges += state.merges();
      s.bytes += state.bytes();
      s.dense_tokens = state.tokens_seen();
    }
    s.cached_tokens = static_cast<double>(reps) / static_cast<double>(heads_);
    s.density = s.dense_tokens > 0 ? s.cached_tokens / static_cast<double>(s.dense_tokens) : 1.0;
    s.recall_samples = recall_count_[static_cast<size_t>(l)];
    s.recall = s.recall_samples > 0 ? recall_sum_[static_cast<size_t>(l)] / static_cast<double>(s.recall_samples) : 0.0;
    total_cached += s.cached_tokens;
    total_dense += s.dense_tokens;
    total_recall += recall_sum_[static_cast<size_t>(l)];
    total_samples += s.recall_samples;
    stats.total.merges += s.merges;
    stats.total.bytes += s.bytes;
    stats.layers.push_back(s);
  }
  stats.total.cached_tokens = total_cached;
  stats.total.dense_tokens = total_dense;
  stats.total.density = total_dense > 0 ? total_cached / static_cast<double>(total_dense) : 1.0;
  stats.total.recall_samples = total_samples;
  stats.total.recall = total_samples > 0 ? total_recall / static_cast<double>(total_samples) : 0.0;
  return stats;
}

std::string format_tempcache_summary(const TempCacheStats& stats) {
  const TempCacheLayerStats& t = stats.total;
  std::ostringstream out;
  out.setf(std::ios::fixed);
  out.precision(1);
  out << "tempcache: KV density " << 100.0 * t.density << "% (" << t.cached_tokens << " of " << t.dense_tokens
      << " tokens per head, summed over " << stats.layers.size() << " layers), " << t.merges << " merges, "
      << static_cast<double>(t.bytes) / 1e6 << " MB";
  if (t.recall_samples > 0) {
    out.precision(2);
    out << ", attention recall " << 100.0 * t.recall << "%";
  }
  return out.str();
}

std::string tempcache_stats_json(const TempCacheStats& stats, const TempCacheOptions& options) {
  auto layer_json = [](const TempCacheLayerStats& s) {
    nlohmann::json j = {{"dense_tokens", s.dense_tokens}, {"cached_tokens", s.cached_tokens}, {"density", s.density},
                        {"merges", s.merges},           {"bytes", s.bytes}};
    if (s.recall_samples > 0) {
      j["recall"] = s.recall;
      j["recall_samples"] = s.recall_samples;
    }
    return j;
  };
  nlohmann::json doc;
  char threshold[32];  // the float as typed (0.9, not 0.8999999761581421)
  std::snprintf(threshold, sizeof threshold, "%.7g", static_cast<double>(options.threshold));
  doc["options"] = {{"threshold", std::stod(threshold)},
                    {"ann", ann_backend_name(options.ann)},
                    {"match", tempcache_match_name(options.match)},
                    {"lsh_tables", options.lsh_tables},
                    {"lsh_bits", options.lsh_bits},
                    {"lsh_multi_probe", options.lsh_multi_probe},
                    {"lsh_bucket_cap", options.lsh_bucket_cap},
                    {"window", options.window},
                    {"sink", options.sink},
                    {"max_tokens", options.max_tokens}};
  doc["total"] = layer_json(stats.total);
  doc["layers"] = nlohmann::json::array();
  for (const TempCacheLayerStats& s : stats.layers) doc["layers"].push_back(layer_json(s));
  return doc.dump(2) + "\n";
}

void write_tempcache_stats_json(const std::string& path, const TempCacheStats& stats, const TempCacheOptions& options) {
  const std::string text = tempcache_stats_json(stats, options);
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream file(tmp, std::ios::trunc);
    FASTAR_CHECK(file, "tempcache: cannot write statistics to '" << tmp << "' (check the output folder)");
    file << text;
    file.close();
    FASTAR_CHECK(file, "tempcache: writing '" << tmp << "' failed (disk full?)");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp);
    FASTAR_FAIL("tempcache: cannot move statistics into '" << path << "': " << ec.message());
  }
}

MemoryStats TempCacheMemory::summary() const {
  MemoryStats s = CrossFrameMemory::summary();
  const TempCacheStats t = stats();
  s.kv_density = t.total.density;
  s.merges = t.total.merges;
  return s;
}

std::string TempCacheMemory::report() const { return format_tempcache_summary(stats()) + "\n"; }

std::string TempCacheMemory::stats_json() const { return tempcache_stats_json(stats(), options_); }

}  // namespace fastar
