// The prompt → pixels pipeline on the GPU against the CPU (issue 16, items 2–6; issue 17's device
// frames), on the small random Wan folder of both layouts (tests/session/tiny_wan_folder.h):
//   - umT5 on the GPU (LoadedModel::encode_prompt(text, CUDA)) vs the CPU encoder: relative error
//     within bf16 GEMMs' tolerance; the padding rows exactly zero;
//   - a GPU session with --decoder wan and --decoder tiny vs the CPU session, frame for frame (8-bit
//     levels: the bf16 DiT and decoder against fp32), with the right frame counts (9, then 12);
//   - Chunk::device_rgb equals Chunk::rgb byte for byte (the DLPack frames are the host frames);
//   - negative control: the GPU frames of another prompt are far (> 4×) from the CPU frames.
// Exit 0 when every check passes. Run: ./build/cuda_pipeline_check
//
// --bench FOLDER [CHUNKS]: prompt → frames at the real shapes (issue 16's benchmark): FOLDER is a Wan
// folder of random parts (tools/make_random_wan_folder.py), the DiT random at its config (Wan2.1-1.3B),
// window 9 + sink 3, 480×832; for --decoder latents, tiny and wan: the umT5 prompt time, then per chunk
// the DiT and the decoder, video frames/s at the start and at the end of CHUNKS chunks (flat?), GPU
// memory in use at both ends. No file is written (an MP4 encoder's cost is not the pipeline's).
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "fastar/core/error.h"
#include "fastar/kernels/cuda/device_memory.h"
#include "fastar/session/session.h"
#include "session/tiny_wan_folder.h"

namespace {

int failures = 0;

void report(bool ok, const std::string& what) {
  std::printf("%s  %s\n", ok ? "PASS" : "FAIL", what.c_str());
  if (!ok) ++failures;
}

// Mean and max |a − b| over two U8 frame stacks of the same shape.
std::pair<double, int> level_difference(const fastar::Tensor& a, const fastar::Tensor& b) {
  const uint8_t* x = a.data<uint8_t>();
  const uint8_t* y = b.data<uint8_t>();
  double sum = 0;
  int worst = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const int d = std::abs(int(x[i]) - int(y[i]));
    sum += d;
    worst = std::max(worst, d);
  }
  return {sum / static_cast<double>(a.numel()), worst};
}

// Video frames/s over chunks [from, to) of `ms` (per chunk: DiT + decoder) and `frames`.
double rate(const std::vector<double>& ms, const std::vector<int64_t>& frames, size_t from, size_t to) {
  double total_ms = 0;
  int64_t total_frames = 0;
  for (size_t i = from; i < to; ++i) {
    total_ms += ms[i];
    total_frames += frames[i];
  }
  return total_frames / (total_ms / 1000.0);
}

// The decoders of a random folder at the real shapes (tools/make_random_wan_folder.py writes the DiT's
// config and umT5): diffusers' vae/ at the Wan2.1 config and taew2_1 at the published widths, random.
void write_random_decoders(const std::string& folder) {
  using namespace fastar;
  namespace fs = std::filesystem;
  if (!fs::exists(fs::path(folder) / "vae" / "diffusion_pytorch_model.safetensors")) {
    WanVaeConfig config;  // base_dim 96, z_dim 16, dim_mult [1, 2, 4, 4], 2 ResBlocks: Wan2.1's
    testing::write_text(fs::path(folder) / "vae" / "config.json",
                        "{\"_class_name\": \"AutoencoderKLWan\", \"base_dim\": 96, \"z_dim\": 16, \"dim_mult\": [1, 2, 4, 4], "
                        "\"num_res_blocks\": 2, \"temperal_downsample\": [false, true, true]}\n");
    write_safetensors((fs::path(folder) / "vae" / "diffusion_pytorch_model.safetensors").string(),
                      wan_vae_weights_to_named(random_wan_vae_decoder_weights(config, 5), WanVaeNameLayout::Diffusers));
  }
  if (!fs::exists(fs::path(folder) / "taew2_1.safetensors"))
    write_safetensors((fs::path(folder) / "taew2_1.safetensors").string(),
                      taehv_weights_to_named(random_taehv_decoder_weights(TaehvConfig{}, 6)));
}

int bench(const std::string& folder, int chunks) {
  using namespace fastar;
  write_random_decoders(folder);
  const auto model = LoadedModel::load(folder, /*random_weights_seed=*/0);
  std::printf("model %s; umT5 %s; VAE %s; tiny %s\n", model->name().c_str(), model->has_umt5() ? "yes" : "no",
              model->has_vae() ? "yes" : "no", model->has_tiny_decoder() ? "yes" : "no");
  const std::string prompt = "a red fox runs through the snow at dawn, cinematic, slow camera pan";
  {
    const auto t0 = std::chrono::steady_clock::now();
    model->encode_prompt(prompt, Device::CUDA);  // uploads umT5 once
    const auto t1 = std::chrono::steady_clock::now();
    const Tensor context = model->encode_prompt(prompt, Device::CUDA);
    const auto t2 = std::chrono::steady_clock::now();
    std::printf("umT5 on the GPU: first prompt %.1f ms (upload included), next %.1f ms (%lld real tokens)\n",
                std::chrono::duration<double, std::milli>(t1 - t0).count(), std::chrono::duration<double, std::milli>(t2 - t1).count(),
                static_cast<long long>(model->umt5()->tokenize(prompt).length));
  }
  std::printf("| decoder | chunks | frames/s chunks 2-6 | frames/s last 5 | DiT ms/chunk (median) | decode ms/chunk (median) | GPU used GiB (start / end) |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  for (const std::string decoder : {"latents", "tiny", "wan"}) {
    SessionOptions o;
    o.device = Device::CUDA;
    o.decoder = decoder;
    o.policy = "window";
    o.policy_options = {{"window", "9"}, {"sink", "3"}};
    Session session(model, o, SessionPrompt::from_text(prompt));
    std::vector<double> ms, dit, dec;
    std::vector<int64_t> frames;
    double used_start = 0;
    for (int c = 0; c < chunks; ++c) {
      const auto t0 = std::chrono::steady_clock::now();
      const Chunk chunk = session.next_chunk();
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      dit.push_back(chunk.ms);
      dec.push_back(chunk.decode_ms);
      frames.push_back(chunk.rgb.size(0));
      if (c == 1) used_start = session.memory_in_use() / double(1ull << 30);
    }
    auto median = [](std::vector<double> v) { std::sort(v.begin(), v.end()); return v[v.size() / 2]; };
    const size_t n = ms.size();
    std::printf("| %s | %d | %.1f | %.1f | %.1f | %.1f | %.2f / %.2f |\n", decoder.c_str(), chunks, rate(ms, frames, 1, std::min<size_t>(6, n)),
                rate(ms, frames, n > 5 ? n - 5 : 0, n), median(dit), median(dec), used_start,
                session.memory_in_use() / double(1ull << 30));
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace fastar;
  if (argc >= 3 && std::string(argv[1]) == "--bench") return bench(argv[2], argc >= 4 ? std::atoi(argv[3]) : 40);
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::fprintf(stderr, "cuda_pipeline_check: no CUDA device\n");
    return 2;
  }
  const testing::TinyWanFolders folders = testing::write_tiny_wan_folders(testing::make_temp_dir("cuda_pipeline_check"));
  const std::string prompt = "a red fox runs through the snow";
  for (const std::string& path : {folders.original, folders.diffusers}) {
    const auto model = LoadedModel::load(path);
    const std::string where = path.substr(path.rfind('/') + 1);
    // umT5: the GPU encoder against the CPU's (bf16 GEMMs over bf16 weights vs fp32 compute).
    const Tensor cpu_context = model->encode_prompt(prompt, Device::CPU);
    const Tensor gpu_context = model->encode_prompt(prompt, Device::CUDA);
    const int64_t real = model->umt5()->tokenize(prompt).length;
    double max_ref = 0, max_diff = 0, padding = 0;
    const int64_t width = cpu_context.size(1);
    for (int64_t i = 0; i < cpu_context.numel(); ++i) {
      const float a = cpu_context.data<float>()[i], b = gpu_context.data<float>()[i];
      if (i / width < real) {
        max_ref = std::max(max_ref, double(std::abs(a)));
        max_diff = std::max(max_diff, double(std::abs(a - b)));
      } else {
        padding += std::abs(b);
      }
    }
    constexpr double kUmt5Tolerance = 2e-2;  // max |GPU − CPU| / max |CPU|: bf16 GEMM inputs, ~0.5% measured in simulation
    char line[256];
    std::snprintf(line, sizeof line, "%s: umT5 GPU vs CPU, max err / max |ref| = %.2e (tol %.0e), padding rows zero",
                  where.c_str(), max_diff / max_ref, kUmt5Tolerance);
    report(max_diff / max_ref <= kUmt5Tolerance && padding == 0, line);

    for (const std::string decoder : {"wan", "tiny"}) {
      SessionOptions cpu_options, gpu_options;
      cpu_options.decoder = gpu_options.decoder = decoder;
      // A bounded policy (the GPU preallocates an unbounded one's memory), the same on both devices.
      cpu_options.policy = gpu_options.policy = "window";
      cpu_options.policy_options = gpu_options.policy_options = {{"window", "6"}, {"sink", "3"}};
      gpu_options.device = Device::CUDA;
      gpu_options.device_frames = true;
      Session cpu(model, cpu_options, SessionPrompt::from_text(prompt));
      Session gpu(model, gpu_options, SessionPrompt::from_text(prompt));
      double worst_mean = 0;  // the largest mean |GPU − CPU| of this decoder's chunks
      for (int c = 0; c < 3; ++c) {
        const Chunk a = cpu.next_chunk();
        const Chunk b = gpu.next_chunk();
        const int64_t expected = c == 0 ? 9 : 12;
        report(b.rgb.size(0) == expected && a.rgb.shape() == b.rgb.shape(),
               where + ": --decoder " + decoder + " chunk " + std::to_string(c) + ": " + std::to_string(b.rgb.size(0)) +
                   " frames (expected " + std::to_string(expected) + ")");
        if (a.rgb.shape() != b.rgb.shape()) continue;
        const Tensor device_copy = b.device_rgb.defined() ? cuda::to_host(b.device_rgb) : Tensor();
        report(device_copy.defined() && std::memcmp(device_copy.raw_data(), b.rgb.raw_data(), b.rgb.nbytes()) == 0,
               where + ": --decoder " + decoder + " chunk " + std::to_string(c) + ": device_rgb = rgb byte for byte");
        const auto [mean, worst] = level_difference(a.rgb, b.rgb);
        // The bf16 DiT drifts from the fp32 one chunk after chunk; the decoders add bf16 rounding. The
        // negative control below (another prompt) sits at tens of levels.
        constexpr double kMeanLevels = 6.0;
        std::snprintf(line, sizeof line, "%s: --decoder %s chunk %d: mean |GPU − CPU| = %.2f levels (tol %.1f), max %d",
                      where.c_str(), decoder.c_str(), c, mean, kMeanLevels, worst);
        report(mean <= kMeanLevels, line);
        worst_mean = std::max(worst_mean, mean);
      }
      if (path == folders.original) {
        Session other(model, gpu_options, SessionPrompt::from_text("a blue car drives at night"));
        Session cpu_again(model, cpu_options, SessionPrompt::from_text(prompt));
        const auto [mean, worst] = level_difference(cpu_again.next_chunk().rgb, other.next_chunk().rgb);
        // Relative to this decoder's own GPU-vs-CPU difference: random narrow decoders differ in contrast
        // (the tiny random TAEHV's frames span few levels), so the control is a ratio, not a level count.
        std::snprintf(line, sizeof line, "negative control (--decoder %s): another prompt differs by %.2f levels (> 4 x %.2f)",
                      decoder.c_str(), mean, worst_mean);
        report(mean > 4.0 * worst_mean && mean > 1.0, line);
      }
    }
  }
  std::printf("%s: %d failure(s)\n", failures ? "FAIL" : "PASS", failures);
  return failures ? 1 : 0;
}
