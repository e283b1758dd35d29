# GPU-only check programs (not CTest: CI has no GPU). Include from the top-level CMakeLists.txt;
# paths are relative to the project root.
#   ./build/cuda_attention_check          correctness sweep against the CPU reference
#   ./build/cuda_attention_check --bench  timings (compare with tools/bench_sdpa.py)
#   ./build/cuda_ops_check                the Wan DiT ops and the cuBLASLt GEMM against the CPU reference
#   ./build/cuda_ops_check --bench        GEMM TFLOP/s at the 1.3B model's shapes
if(FASTAR_CUDA)
  add_executable(cuda_attention_check ${CMAKE_CURRENT_SOURCE_DIR}/tests/cuda/attention_check.cu)
  target_link_libraries(cuda_attention_check PRIVATE fastar_lib)
  add_executable(cuda_ops_check ${CMAKE_CURRENT_SOURCE_DIR}/tests/cuda/ops_check.cu)
  target_link_libraries(cuda_ops_check PRIVATE fastar_lib)
endif()
if(FASTAR_CUDA)
  add_executable(cuda_dit_check ${CMAKE_CURRENT_SOURCE_DIR}/tests/cuda/dit_check.cpp)
  target_link_libraries(cuda_dit_check PRIVATE fastar_lib)
  target_compile_definitions(cuda_dit_check PRIVATE FASTAR_SOURCE_DIR="${CMAKE_CURRENT_SOURCE_DIR}")
endif()
