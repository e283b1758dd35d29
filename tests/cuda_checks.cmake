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
