// Reading and writing safetensors checkpoints.
//
// A safetensors file is: u64 little-endian header length N, N bytes of JSON header
// ({name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}),
// then the data section; offsets are relative to the start of the data section. As in Python's
// safetensors, the header is JSON padded at the end with spaces only, and the tensors fill the data
// section exactly: back to back, no gaps, no spare bytes, each numel × dtype size bytes long.
//
// Checkpoint::open memory-maps every file read-only and validates the whole header up front, so
// every TensorEntry handed out afterwards lies inside its mapping. The mappings are unmapped when
// the last Checkpoint copy and the last Tensor borrowing from them are gone. Every problem with the
// input is reported as a fastar::Error naming the file; hostile input never reads out of bounds.
// (A file truncated by another process *after* it was mapped can still raise SIGBUS; nothing
// in user space can prevent that.)
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "fastar/core/dtype.h"
#include "fastar/core/tensor.h"

namespace fastar {

// One tensor of a checkpoint.
struct TensorEntry {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  std::string file;            // the file holding it
  const void* data = nullptr;  // into the memory map (may be unaligned)
  int64_t nbytes = 0;
};

class Checkpoint {
 public:
  // path: a .safetensors file, a *.safetensors.index.json (sharded: {"metadata": ..., "weight_map":
  // {name: shard file}}, shard files relative to the index's folder), or a directory holding one of
  // those. In a directory an index json wins over single files; when several candidates of a kind
  // exist, diffusion_pytorch_model.safetensors(.index.json) is preferred, then
  // model.safetensors(.index.json); otherwise it is an error that lists them.
  static Checkpoint open(const std::string& path);

  // nullptr if absent.
  const TensorEntry* find(const std::string& name) const;
  // Throws fastar::Error "<path>: no tensor named '<name>'" with the closest names as a hint.
  const TensorEntry& at(const std::string& name) const;
  // A Tensor over the mapping; its Storage keeps the mapping alive. Zero-copy when the data is
  // aligned to the element size (the data section starts 8-aligned, so that holds whenever the
  // tensors before it have byte lengths that are multiples of its element size, e.g. when a file
  // lists tensors by descending element size); an unaligned entry is copied into aligned host
  // memory instead, because kernels dereference typed pointers.
  Tensor tensor(const std::string& name) const;
  // All tensor names, sorted.
  std::vector<std::string> names() const;
  // "__metadata__" of the (first) file; empty if it has none.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // The safetensors files read (one, or the shards in name order).
  const std::vector<std::string>& files() const { return files_; }
  // The path resolved by open(): the .safetensors file or the index json.
  const std::string& path() const { return path_; }
  int64_t num_tensors() const { return static_cast<int64_t>(entries_.size()); }

 private:
  struct Entry {
    TensorEntry entry;
    size_t file_index = 0;  // into files_ / storages_
    int64_t offset = 0;     // byte offset of the data from the start of the mapping
  };

  std::string path_;
  std::vector<std::string> files_;
  std::vector<std::shared_ptr<Storage>> storages_;  // one per file: the whole mapping
  std::map<std::string, std::string> metadata_;
  std::map<std::string, Entry> entries_;
};

// Writes a safetensors file atomically (to "<path>.tmp-<pid>", then rename; the temporary file is
// removed on failure). The header JSON is padded with spaces so the data section starts at a
// multiple of 8 bytes; tensors are laid out in the given order, back to back (safetensors allows
// no gaps), so give them by descending element size to keep every tensor aligned. Tensors must be defined,
// contiguous host tensors with unique names ("__metadata__" is reserved).
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace fastar
