// libFuzzer target: a whole .safetensors file (header length, JSON header, data section) through
// Checkpoint::open, then every tensor read back as the model loaders read it.
#include <cstdint>
#include <cstring>

#include "fastar/core/safetensors.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const fastar_fuzz::MemFile file(data, size);
  fastar_fuzz::expect_only_fastar_errors("Checkpoint::open", [&] {
    const fastar::Checkpoint ckpt = fastar::Checkpoint::open(file.path());
    volatile float sink = 0.0f;
    for (const std::string& name : ckpt.names()) {
      const fastar::TensorEntry& entry = ckpt.at(name);
      if (entry.nbytes > 0) {  // every byte the header promises must be readable
        const auto* bytes = static_cast<const unsigned char*>(entry.data);
        sink = sink + bytes[0] + bytes[entry.nbytes - 1];
      }
      const fastar::Tensor t = ckpt.tensor(name);
      if (fastar::dtype_is_float(entry.dtype) && t.numel() > 0) {
        const fastar::Tensor f = t.to_f32();
        sink = sink + f.data<float>()[f.numel() - 1];
      }
    }
    (void)ckpt.metadata();
    (void)ckpt.find("__metadata__");
    try {
      (void)ckpt.at("a name no checkpoint holds");  // the nearest-names hint walks every name
    } catch (const fastar::Error&) {
    }
  });
  return 0;
}
