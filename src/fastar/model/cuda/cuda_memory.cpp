#include "fastar/model/cuda/cuda_memory.h"

#include <atomic>

namespace fastar::cuda {

uint64_t next_memory_layout_version() {
  static std::atomic<uint64_t> counter{1};
  return counter.fetch_add(1);
}

}  // namespace fastar::cuda
