// GPU check of the umT5 encoder (pipeline-spec.md §4; run on a GPU machine, never in CI):
//   1. the ops of umt5_ops.h against CPU loops: embedding rows, RMS norm (bf16 / fp32 out), gated GELU,
//      the relative-bias attention (with a negative control: the same attention scaled by 1/√d_kv);
//   2. CudaUmt5Encoder against the CPU Umt5Encoder on the tiny golden (tests/model/golden/umt5_tiny, Wan
//      names, BF16) and on a random config (3 layers, heads·d_kv ≠ d_model), lengths 1, 7, the golden
//      prompts' and the full length; host fp32 and device bf16 outputs; rows >= length exactly zero;
//   3. negative control: a CPU model whose layers all use layer 0's relative-bias table (T5 / mT5 style,
//      not umT5) must be rejected by the same comparison;
//   4. bad input throws fastar::Error (more real tokens than max_tokens, an id outside the vocab).
//   --bench: umT5-XXL shapes (24 layers, d_model 4096, 64 heads x 64, d_ff 10240, vocab 256384) with random
//   bf16 weights generated on the GPU, 512 and 128 tokens: ms per encode after warm-up (compare with
//   tools/bench_umt5_torch.py, which prints the same rows).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "bf16_data.h"
#include "check_util.h"
#include "fastar/core/error.h"
#include "fastar/core/safetensors.h"
#include "fastar/kernels/cpu/ops.h"
#include "fastar/kernels/cuda/device_memory.h"
#include "fastar/kernels/cuda/umt5_ops.h"
#include "fastar/model/cuda/umt5_encoder_cuda.h"
#include "fastar/model/umt5_encoder.h"

using namespace fastar;

namespace {

// Whole encoder, GPU (bf16 GEMM inputs and outputs, bf16 probabilities, fp32 residual and statistics)
// against the CPU (fp32, double softmax sums): max |gpu − cpu| / max |cpu| over the real rows. A torch
// simulation of exactly these rounding points gave 0.46–0.70% on both models here (and the shared-bias
// control 25–56%), so 2% leaves a 3x margin. The device bf16 output adds one rounding (≤ 0.2%).
constexpr double kEncoderTolerance = 2e-2;
// One op, one bf16 rounding of its output (2^-9 relative) plus fp32 arithmetic.
constexpr double kOneRoundingTolerance = 4e-3;
// The attention core: bf16 probabilities and bf16 output against double.
constexpr double kAttentionTolerance = 1e-2;
// fp32 output against the CPU's fp32 (double statistics there): summation order only.
constexpr double kF32Tolerance = 1e-5;

int failures = 0;

void report(const std::string& what, double err, double tol, const std::string& extra = "") {
  const bool ok = err <= tol && std::isfinite(err);
  failures += !ok;
  std::printf("%s %-64s rel err %.3g (tol %.3g) %s\n", ok ? "PASS" : "FAIL", what.c_str(), err, tol, extra.c_str());
}

// A negative control passes when the comparison rejects the deliberately wrong reference.
void report_control(const std::string& what, double err, double tol) {
  const bool ok = err > tol && std::isfinite(err);
  failures += !ok;
  std::printf("%s %-64s rel err %.3g (must exceed %.3g)\n", ok ? "PASS" : "FAIL", what.c_str(), err, tol);
}

void report_throws(const std::string& what, const std::function<void()>& run, const std::string& expected_part) {
  std::string message;
  try {
    run();
  } catch (const Error& e) {
    message = e.what();
  }
  const bool ok = message.find(expected_part) != std::string::npos;
  failures += !ok;
  std::printf("%s %-64s %s\n", ok ? "PASS" : "FAIL", what.c_str(),
              message.empty() ? "(no error thrown)" : ("error: " + message.substr(0, 110)).c_str());
}

double rel_err(const float* a, const float* b, int64_t n) {
  double diff = 0, ref = 0;
  for (int64_t i = 0; i < n; ++i) {
    diff = std::max(diff, std::fabs(double(a[i]) - b[i]));
    ref = std::max(ref, std::fabs(double(b[i])));
  }
  return diff / std::max(ref, 1e-30);
}

// Elements of rows [length, rows) that are not exactly zero.
int64_t nonzero_tail(const float* x, int64_t length, int64_t rows, int64_t dim) {
  int64_t bad = 0;
  for (int64_t i = length * dim; i < rows * dim; ++i) bad += x[i] != 0.0f;
  return bad;
}

// ---- 1. ops ------------------------------------------------------------------------------------------

void check_ops(cudaStream_t st) {
  std::mt19937 rng(7);
  {  // embedding rows: exact
    const int64_t vocab = 50, dim = 72, rows = 9;
    const std::vector<float> table = random_bf16(vocab * dim, rng);
    std::vector<int32_t> ids(rows);
    for (auto& id : ids) id = static_cast<int32_t>(rng() % vocab);
    ids[0] = vocab - 1;
    DeviceBf16 d_table(table);
    DeviceBuffer<int32_t> d_ids(ids);
    DeviceBuffer<float> d_x(rows * dim);
    cuda::umt5_embedding_rows(d_x.ptr, d_table.get(), d_ids.ptr, rows, dim, st);
    CHECK_CUDA(cudaStreamSynchronize(st));
    const std::vector<float> x = d_x.download();
    double err = 0;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < dim; ++i) err = std::max(err, double(std::fabs(x[r * dim + i] - table[ids[r] * dim + i])));
    report("op: embedding rows (exact)", err, 0.0);
  }
  {  // RMS norm: dim past one thread per element, fp32 and bf16 outputs
    const int64_t rows = 5, dim = 300;
    const std::vector<float> x = random_bf16(rows * dim, rng, 3.0f), w = random_bf16(dim, rng);
    std::vector<float> ref(rows * dim);
    cpu::rmsnorm_forward(ref.data(), x.data(), w.data(), rows, dim, 1e-6f);
    DeviceBuffer<float> d_x(x), d_w(w), d_out(rows * dim);
    DeviceBf16 d_out_bf16(rows * dim);
    cuda::umt5_rmsnorm_f32(d_out.ptr, d_x.ptr, d_w.ptr, rows, dim, 1e-6f, st);
    cuda::umt5_rmsnorm_bf16(d_out_bf16.get(), d_x.ptr, d_w.ptr, rows, dim, 1e-6f, st);
    CHECK_CUDA(cudaStreamSynchronize(st));
    report("op: RMS norm, fp32 out", rel_err(d_out.download().data(), ref.data(), rows * dim), kF32Tolerance);
    report("op: RMS norm, bf16 out", rel_err(d_out_bf16.download().data(), ref.data(), rows * dim), kOneRoundingTolerance);
  }
  {  // gated GELU on the fused gate|up rows
    const int64_t rows = 3, ff = 100;
    const std::vector<float> gate_up = random_bf16(rows * 2 * ff, rng, 2.0f);
    std::vector<float> gate(rows * ff), ref(rows * ff);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < ff; ++i) gate[r * ff + i] = gate_up[r * 2 * ff + i];
    cpu::gelu_tanh_forward(gate.data(), rows * ff);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < ff; ++i) ref[r * ff + i] = gate[r * ff + i] * gate_up[r * 2 * ff + ff + i];
    DeviceBf16 d_in(gate_up), d_out(rows * ff);
    cuda::umt5_gelu_tanh_gate_mul(d_out.get(), d_in.get(), rows, ff, st);
    CHECK_CUDA(cudaStreamSynchronize(st));
    report("op: GELU_tanh(gate) * up", rel_err(d_out.download().data(), ref.data(), rows * ff), kOneRoundingTolerance);
  }
  // The attention core: lengths 1, 7 and 130 (past |rel| 91, the last log bucket), a bucket table for up to
  // 160 tokens (its center is not n − 1).
  const int64_t heads = 3, d_kv = 16, inner = heads * d_kv, buckets = 32, max_n = 160;
  std::vector<int32_t> bucket_of(2 * max_n - 1);
  for (int64_t rel = -(max_n - 1); rel <= max_n - 1; ++rel)
    bucket_of[rel + max_n - 1] = static_cast<int32_t>(umt5_relative_bucket(rel, buckets, 128));
  DeviceBuffer<int32_t> d_buckets(bucket_of);
  const std::vector<float> bias = random_bf16(buckets * heads, rng);
  DeviceBuffer<float> d_bias(bias);
  cublasHandle_t blas = nullptr;
  if (cublasCreate(&blas) != CUBLAS_STATUS_SUCCESS) {
    std::printf("FAIL cublasCreate\n");
    ++failures;
    return;
  }
  for (int64_t n : {1, 7, 130}) {
    const std::vector<float> qkv = random_bf16(n * 3 * inner, rng, 1.0f);
    // CPU reference in double, optionally with the (wrong for T5) 1/√d_kv scaling.
    auto reference = [&](double scale) {
      std::vector<float> out(n * inner);
      std::vector<double> s(n);
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t i = 0; i < n; ++i) {
          double m = -1e300;
          for (int64_t j = 0; j < n; ++j) {
            double dot = 0;
            for (int64_t c = 0; c < d_kv; ++c)
              dot += double(qkv[i * 3 * inner + h * d_kv + c]) * qkv[j * 3 * inner + inner + h * d_kv + c];
            s[j] = dot * scale + bias[umt5_relative_bucket(j - i, buckets, 128) * heads + h];
            m = std::max(m, s[j]);
          }
          double sum = 0;
          for (double& e : s) sum += (e = std::exp(e - m));
          for (int64_t c = 0; c < d_kv; ++c) {
            double acc = 0;
            for (int64_t j = 0; j < n; ++j) acc += s[j] * qkv[j * 3 * inner + 2 * inner + h * d_kv + c];
            out[i * inner + h * d_kv + c] = static_cast<float>(acc / sum);
          }
        }
      return out;
    };
    DeviceBf16 d_qkv(qkv), d_out(n * inner), d_probs(heads * n * n);
    DeviceBuffer<float> d_scores(heads * n * n);
    cuda::Umt5AttentionParams p;
    p.out = d_out.get();
    p.qkv = d_qkv.get();
    p.scores = d_scores.ptr;
    p.probs = d_probs.get();
    p.bias = d_bias.ptr;
    p.bucket_of = d_buckets.ptr;
    p.center = max_n - 1;
    p.n = n;
    p.heads = heads;
    p.d_kv = d_kv;
    cuda::umt5_relative_attention(blas, p, st);
    CHECK_CUDA(cudaStreamSynchronize(st));
    const std::vector<float> out = d_out.download();
    const std::string tag = "op: relative-bias attention n=" + std::to_string(n);
    report(tag, rel_err(out.data(), reference(1.0).data(), n * inner), kAttentionTolerance);
    if (n > 1) report_control(tag + " vs 1/sqrt(d) scaled (control)", rel_err(out.data(), reference(0.25).data(), n * inner),
                              kAttentionTolerance);
  }
  cublasDestroy(blas);
}

// ---- 2-4. the encoder ----------------------------------------------------------------------------------

// Every layer with layer 0's relative-bias table: the T5 / mT5 sharing that umT5 does not do.
Umt5Encoder shared_bias_model(const Umt5Encoder& model) {
  Umt5Weights w = model.weights();
  for (Umt5LayerWeights& layer : w.layers) layer.relative_bias = w.layers[0].relative_bias;
  return Umt5Encoder(model.config(), w, "shared-bias control");
}

// Compares CPU and GPU encodes of ids at each length; a negative control at the last length.
void check_encoder(const std::string& name, const Umt5Encoder& cpu, cuda::CudaUmt5Encoder& gpu,
                   const std::vector<int32_t>& ids, const std::vector<int64_t>& lengths) {
  const int64_t rows = static_cast<int64_t>(ids.size()), d = cpu.config().d_model;
  for (int64_t length : lengths) {
    const std::string tag = name + " L=" + std::to_string(length) + "/" + std::to_string(rows);
    const Tensor ref = cpu.encode(ids, length);
    const Tensor host = gpu.encode_to_host(ids, length);
    const Tensor device = cuda::to_host(gpu.encode(ids, length)).to_f32();
    CHECK_CUDA(cudaStreamSynchronize(gpu.stream()));
    report(tag + ", host fp32", rel_err(host.data<float>(), ref.data<float>(), length * d), kEncoderTolerance);
    report(tag + ", device bf16", rel_err(device.data<float>(), ref.data<float>(), length * d), kEncoderTolerance);
    const int64_t nonzero = nonzero_tail(host.data<float>(), length, rows, d) + nonzero_tail(device.data<float>(), length, rows, d);
    report(tag + ", rows >= L exactly zero", static_cast<double>(nonzero), 0.0,
           "(" + std::to_string(nonzero) + " nonzero padding values)");
    if (length == lengths.back()) {
      const Tensor wrong = shared_bias_model(cpu).encode(ids, length);
      report_control(tag + " vs shared-bias CPU (control)", rel_err(host.data<float>(), wrong.data<float>(), length * d),
                     kEncoderTolerance);
    }
  }
}

Umt5Weights random_weights(const Umt5Config& c, uint32_t seed) {
  std::mt19937 rng(seed);
  auto matrix = [&](int64_t rows, int64_t cols, double std) {
    Tensor t = Tensor::zeros({rows, cols}, DType::BF16);
    const std::vector<float> v = random_bf16(static_cast<size_t>(rows * cols), rng, static_cast<float>(std));
    for (size_t i = 0; i < v.size(); ++i) t.data<uint16_t>()[i] = f32_to_bf16(v[i]);
    return t;
  };
  auto vec = [&](int64_t n, float offset, float std) {
    Tensor t = Tensor::zeros({n});
    const std::vector<float> v = random_bf16(static_cast<size_t>(n), rng, std);
    for (int64_t i = 0; i < n; ++i) t.data<float>()[i] = offset + v[static_cast<size_t>(i)];
    return t;
  };
  const int64_t d = c.d_model, inner = c.inner_dim(), ff = c.d_ff;
  Umt5Weights w;
  w.token_embedding = matrix(c.vocab_size, d, 1.0);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    Umt5LayerWeights lw;
    lw.attention_norm = vec(d, 1.0f, 0.1f);
    lw.q = matrix(inner, d, 1.0 / std::sqrt(double(d) * c.d_kv));  // T5's initialisation scales
    lw.k = matrix(inner, d, 1.0 / std::sqrt(double(d)));
    lw.v = matrix(inner, d, 1.0 / std::sqrt(double(d)));
    lw.o = matrix(d, inner, 1.0 / std::sqrt(double(inner)));
    lw.relative_bias = vec(c.num_buckets * c.num_heads, 0.0f, 1.0f).reshape({c.num_buckets, c.num_heads});
    lw.ffn_norm = vec(d, 1.0f, 0.1f);
    lw.gate = matrix(ff, d, 1.0 / std::sqrt(double(d)));
    lw.up = matrix(ff, d, 1.0 / std::sqrt(double(d)));
    lw.down = matrix(d, ff, 1.0 / std::sqrt(double(ff)));
    w.layers.push_back(lw);
  }
  w.final_norm = vec(d, 1.0f, 0.1f);
  return w;
}

int check(const std::string& root) {
  cudaStream_t stream;
  CHECK_CUDA(cudaStreamCreate(&stream));
  check_ops(stream);

  {  // the golden: Wan names, BF16 weights; two prompts of 153 and 30 real tokens padded to 160
    const std::string dir = root + "/tests/model/golden/umt5_tiny/";
    const Umt5Encoder cpu = Umt5Encoder::load(dir + "wan_text_encoder_bf16.safetensors");
    cuda::CudaUmt5Encoder gpu(cpu, stream, 512);
    Checkpoint io = Checkpoint::open(dir + "encoder_io.safetensors");
    const Tensor ids_t = io.tensor("ids"), mask_t = io.tensor("mask"), hf = io.tensor("output_bf16_weights");
    const int64_t text_len = ids_t.size(1), d = cpu.config().d_model;
    for (int64_t b = 0; b < ids_t.size(0); ++b) {
      const int32_t* p = ids_t.data<int32_t>() + b * text_len;
      const std::vector<int32_t> ids(p, p + text_len);
      int64_t length = 0;
      for (int64_t i = 0; i < text_len; ++i) length += mask_t.data<int32_t>()[b * text_len + i] != 0;
      const std::string name = "golden prompt " + std::to_string(b);
      check_encoder(name, cpu, gpu, ids, b == 0 ? std::vector<int64_t>{1, 7, length, text_len} : std::vector<int64_t>{length});
      // transformers' own output (fp32 over the same bf16 weights, padded run) on the real rows.
      const Tensor out = gpu.encode_to_host(ids, length);
      report(name + " vs transformers golden (output_bf16_weights)",
             rel_err(out.data<float>(), hf.data<float>() + b * text_len * d, length * d), kEncoderTolerance);
    }
  }

  {  // random config: heads·d_kv (96) ≠ d_model (128), 3 layers, lengths past max_distance
    Umt5Config c;
    c.vocab_size = 300;
    c.d_model = 128;
    c.d_kv = 16;
    c.num_heads = 6;
    c.d_ff = 192;
    c.num_layers = 3;
    const Umt5Encoder cpu(c, random_weights(c, 3), "random umT5");
    const int64_t text_len = 200;
    cuda::CudaUmt5Encoder gpu(cpu, stream, text_len);
    std::mt19937 rng(11);
    std::vector<int32_t> ids(text_len);
    for (auto& id : ids) id = static_cast<int32_t>(rng() % c.vocab_size);
    check_encoder("random config", cpu, gpu, ids, {1, 7, 120, text_len});

    std::vector<int32_t> longer(text_len + 1, 5);
    report_throws("bad input: more real tokens than max_tokens", [&] { gpu.encode(longer, text_len + 1); }, "max_tokens");
    std::vector<int32_t> bad_id = ids;
    bad_id[3] = static_cast<int32_t>(c.vocab_size);
    report_throws("bad input: token id outside the vocab", [&] { gpu.encode_to_host(bad_id, 10); }, "outside the embedding");
  }
  CHECK_CUDA(cudaStreamDestroy(stream));
  std::printf("%s: %d failure(s)\n", failures ? "FAILED" : "ALL PASSED", failures);
  return failures ? 1 : 0;
}

// ---- bench -------------------------------------------------------------------------------------------------

int bench() {
  Umt5Config c;  // umT5-XXL (pipeline-spec.md §4.1)
  c.vocab_size = 256384;
  c.d_model = 4096;
  c.d_kv = 64;
  c.num_heads = 64;
  c.d_ff = 10240;
  c.num_layers = 24;
  cudaStream_t stream;
  CHECK_CUDA(cudaStreamCreate(&stream));
  std::printf("device: %s\n", cuda::device_description(0).c_str());
  const int64_t max_tokens = 512;
  auto gpu = cuda::CudaUmt5Encoder::with_random_weights(c, 1, stream, max_tokens);
  std::printf("umT5-XXL, random bf16 weights: %.2f GiB weights, %.2f GiB buffers for %lld tokens\n",
              gpu->weight_bytes() / 1073741824.0, gpu->buffer_bytes() / 1073741824.0, static_cast<long long>(max_tokens));
  std::mt19937 rng(5);
  std::vector<int32_t> ids(max_tokens);
  for (auto& id : ids) id = static_cast<int32_t>(rng() % c.vocab_size);
  DeviceBf16 context(static_cast<size_t>(max_tokens * c.d_model));
  std::printf("| model | implementation | tokens | ms per encode | TFLOP/s |\n|---|---|---|---|---|\n");
  for (int64_t n : {512, 128}) {
    const std::vector<int32_t> call(ids.begin(), ids.begin() + n);  // n real tokens, no padding
    const Tensor check = gpu->encode_to_host(call, n);
    int64_t bad = 0;
    for (int64_t i = 0; i < check.numel(); ++i) bad += !std::isfinite(check.data<float>()[i]);
    if (bad) {
      std::printf("FAIL %lld non-finite outputs at %lld tokens\n", static_cast<long long>(bad), static_cast<long long>(n));
      ++failures;
    }
    for (int i = 0; i < 3; ++i) gpu->encode_into(context.get(), call, n);  // warm-up (plans, clocks)
    const float ms = time_ms(stream, 20, [&] { gpu->encode_into(context.get(), call, n); });
    const double d = double(c.d_model), inner = double(c.inner_dim());
    const double flops = c.num_layers * (2.0 * n * (4 * d * inner + 3 * d * c.d_ff) + 4.0 * double(n) * n * inner);
    std::printf("| umT5-XXL encode | fastar CUDA (bf16 cuBLASLt) | %lld | %.3f | %.1f |\n", static_cast<long long>(n), ms,
                flops / (ms * 1e-3) / 1e12);
  }
  gpu.reset();
  CHECK_CUDA(cudaStreamDestroy(stream));
  return failures ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc > 1 && std::string(argv[1]) == "--bench") return bench();
    return check(FASTAR_SOURCE_DIR);
  } catch (const std::exception& e) {
    std::printf("FAIL: %s\n", e.what());
    return 1;
  }
}
