# GPU-only check programs (not CTest: CI has no GPU). Include from the top-level CMakeLists.txt;
# paths are relative to the project root.
#   ./build/cuda_attention_check          correctness sweep against the CPU reference
#   ./build/cuda_attention_check --bench  timings (compare with tools/bench_sdpa.py)
if(FASTAR_CUDA)
  add_executable(cuda_attention_check ${CMAKE_CURRENT_SOURCE_DIR}/tests/cuda/attention_check.cu)
  target_link_libraries(cuda_attention_check PRIVATE fastar_lib)
endif()
