# GPU-only check programs (not CTest: CI has no GPU). Include from the top-level CMakeLists.txt;
# paths are relative to the project root.
#   ./build/cuda_attention_check          correctness sweep against the CPU reference
#   ./build/cuda_attention_check --bench  timings (compare with tools/bench_sdpa.py)
#   ./build/cuda_ops_check                the Wan DiT ops and the cuBLASLt GEMM against the CPU reference
#   ./build/cuda_ops_check --bench        GEMM TFLOP/s at the 1.3B model's shapes
#   ./build/cuda_gdn_check                the gated delta rule (ARL²) update and read against the CPU reference
#   ./build/cuda_gdn_check --bench        their timings at Wan2.1-1.3B shapes (12 heads x 128, 4680 tokens)
#   ./build/cuda_tempcache_check          TempCache's GPU commit and biased attention against TempCacheMemory (CPU)
#   ./build/cuda_tempcache_check --bench  commit time per layer at Wan2.1-1.3B shapes, ~20k groups per head
#   ./build/cuda_annsa_check              AnnSA's GPU kernels and CudaAnnSaMemory against the CPU AnnSA
#   ./build/cuda_annsa_check --bench      AnnSA vs dense attention per layer at Wan2.1-1.3B shapes
#   ./build/cuda_annca_check              AnnCA's GPU kernels and CudaAnnCrossAttention against the CPU AnnCA
#   ./build/cuda_annca_check --bench      AnnCA vs dense cross-attention per layer at Wan2.1-1.3B shapes
if(FASTAR_CUDA)
  add_executable(cuda_attention_check ${CMAKE_CURRENT_SOURCE_DIR}/tests/cuda/attention_check.cu)
  target_link_libraries(cuda_attention_check PRIVATE fastar_lib)
  add_executable(cuda_ops_check ${CMAKE_CURRENT_SOURCE_DIR}/tests/cuda/ops_check.cu)
  target_link_libraries(cuda_ops_check PRIVATE fastar_lib)
  add_executable(cuda_gdn_check ${CMAKE_CURRENT_SOURCE_DIR}/tests/cuda/gdn_check.cu)
  target_link_libraries(cuda_gdn_check PRIVATE fastar_lib)
  add_executable(cuda_tempcache_check ${CMAKE_CURRENT_SOURCE_DIR}/tests/cuda/tempcache_check.cpp)
  target_link_libraries(cuda_tempcache_check PRIVATE fastar_lib)
  add_executable(cuda_annsa_check ${CMAKE_CURRENT_SOURCE_DIR}/tests/cuda/annsa_check.cpp)
  target_link_libraries(cuda_annsa_check PRIVATE fastar_lib)
  add_executable(cuda_annca_check ${CMAKE_CURRENT_SOURCE_DIR}/tests/cuda/annca_check.cpp)
  target_link_libraries(cuda_annca_check PRIVATE fastar_lib)
endif()
if(FASTAR_CUDA)
  add_executable(cuda_dit_check ${CMAKE_CURRENT_SOURCE_DIR}/tests/cuda/dit_check.cpp)
  target_link_libraries(cuda_dit_check PRIVATE fastar_lib)
  target_compile_definitions(cuda_dit_check PRIVATE FASTAR_SOURCE_DIR="${CMAKE_CURRENT_SOURCE_DIR}")
endif()
# umT5 encoder on the GPU (CudaUmt5Encoder, umt5_ops) against the CPU Umt5Encoder:
#   ./build/cuda_umt5_check          ops + encoder vs CPU on the tiny golden and a random config
#   ./build/cuda_umt5_check --bench  umT5-XXL shapes, random weights, 512 / 128 tokens (tools/bench_umt5_torch.py)
if(FASTAR_CUDA)
  add_executable(cuda_umt5_check ${CMAKE_CURRENT_SOURCE_DIR}/tests/cuda/umt5_check.cpp)
  target_link_libraries(cuda_umt5_check PRIVATE fastar_lib)
  target_compile_definitions(cuda_umt5_check PRIVATE FASTAR_SOURCE_DIR="${CMAKE_CURRENT_SOURCE_DIR}")
endif()
# The Wan2.1 VAE CUDA decoder and its cuDNN convolutions against the CPU reference (tests/cuda/wan_vae_check.cpp):
#   ./build/cuda_wan_vae_check            correctness (ConvRunner, CudaWanVaeStream vs WanVaeStream)
#   ./build/cuda_wan_vae_check --bench    480x832 streaming chunks: ms, frames/s, memory (vs tools/bench_vae_torch.py)
if(FASTAR_CUDA)
  add_executable(cuda_wan_vae_check ${CMAKE_CURRENT_SOURCE_DIR}/tests/cuda/wan_vae_check.cpp)
  target_link_libraries(cuda_wan_vae_check PRIVATE fastar_lib)
  target_compile_definitions(cuda_wan_vae_check PRIVATE FASTAR_SOURCE_DIR="${CMAKE_CURRENT_SOURCE_DIR}")
endif()
# ---- CUDA TAEHV / LightTAE decoder (tests/cuda/taehv_check.cpp) ----
#   ./build/cuda_taehv_check                  kernels, CudaTaehvStream vs TaehvStream (CPU) and the golden files
#   ./build/cuda_taehv_check --bench          480x832 timings (compare with tools/bench_taehv_torch.py)
if(FASTAR_CUDA)
  add_executable(cuda_taehv_check ${CMAKE_CURRENT_SOURCE_DIR}/tests/cuda/taehv_check.cpp)
  target_link_libraries(cuda_taehv_check PRIVATE fastar_lib)
  target_compile_definitions(cuda_taehv_check PRIVATE FASTAR_SOURCE_DIR="${CMAKE_CURRENT_SOURCE_DIR}")
endif()
# ./build/cuda_pipeline_check   prompt → pixels on the GPU vs the CPU on the small random Wan folder (umT5, both decoders, device frames)
if(FASTAR_CUDA)
  add_executable(cuda_pipeline_check ${CMAKE_CURRENT_SOURCE_DIR}/tests/cuda/pipeline_check.cpp ${CMAKE_CURRENT_SOURCE_DIR}/tests/test_util.cpp)
  target_include_directories(cuda_pipeline_check PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/tests)
  target_link_libraries(cuda_pipeline_check PRIVATE fastar_lib)
  target_compile_definitions(cuda_pipeline_check PRIVATE FASTAR_SOURCE_DIR="${CMAKE_CURRENT_SOURCE_DIR}"
                                                         FASTAR_BINARY="${CMAKE_BINARY_DIR}/fastar")
endif()
