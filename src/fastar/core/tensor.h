// A small strided tensor: dtype, shape, element strides and shared storage.
//
// Storage is reference counted and may be owned host memory, a borrowed region of a memory-mapped
// file (the mapping stays alive as long as any tensor uses it), or device memory (CUDA backend).
// Compute code takes raw pointers and strides (kernels/); Tensor is the owner that hands them out.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "fastar/core/dtype.h"

namespace fastar {

enum class Device : uint8_t { CPU, CUDA };

// A block of bytes plus whatever keeps it alive.
class Storage {
 public:
  // Owned, 64-byte aligned host memory, zero-filled.
  static std::shared_ptr<Storage> allocate_host(int64_t nbytes);
  // Borrowed memory; `keep_alive` holds the owner (e.g. a file mapping).
  static std::shared_ptr<Storage> borrow(void* data, int64_t nbytes, std::shared_ptr<void> keep_alive,
                                         Device device = Device::CPU);
  // Memory with a custom release function (used by the CUDA allocator).
  static std::shared_ptr<Storage> adopt(void* data, int64_t nbytes, Device device, std::function<void(void*)> release);

  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  int64_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  Storage() = default;
  void* data_ = nullptr;
  int64_t nbytes_ = 0;
  Device device_ = Device::CPU;
  std::shared_ptr<void> keep_alive_;
  std::function<void(void*)> release_;
};

using Shape = std::vector<int64_t>;

std::string shape_to_string(const Shape& shape);
int64_t shape_numel(const Shape& shape);

class Tensor {
 public:
  Tensor() = default;

  // New contiguous host tensor, zero-filled.
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32);
  // A tensor over existing storage (contiguous, starting `offset_bytes` into it).
  static Tensor from_storage(std::shared_ptr<Storage> storage, int64_t offset_bytes, const Shape& shape, DType dtype);

  bool defined() const { return storage_ != nullptr; }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_ ? storage_->device() : Device::CPU; }
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  int64_t dim() const { return static_cast<int64_t>(shape_.size()); }
  int64_t size(int64_t axis) const;
  int64_t stride(int64_t axis) const;
  int64_t numel() const { return shape_numel(shape_); }
  int64_t nbytes() const { return numel() * dtype_size(dtype_); }
  bool is_contiguous() const;

  void* raw_data() const;
  template <typename T>
  T* data() const {
    return static_cast<T*>(raw_data());
  }

  // Same storage, new shape (the tensor must be contiguous and numel must match).
  Tensor reshape(const Shape& shape) const;
  // Rows [begin, end) of axis 0, sharing storage.
  Tensor slice_rows(int64_t begin, int64_t end) const;
  // A deep, contiguous copy converted to fp32 (host only).
  Tensor to_f32() const;
  // A deep, contiguous copy converted to `dtype` (host only, float types).
  Tensor to_dtype(DType dtype) const;
  Tensor clone() const;

  std::string describe() const;  // "F32[2, 3]"

 private:
  std::shared_ptr<Storage> storage_;
  int64_t offset_bytes_ = 0;
  Shape shape_;
  Shape strides_;  // in elements
  DType dtype_ = DType::F32;
};

// Contiguous row-major strides of `shape`, in elements.
Shape contiguous_strides(const Shape& shape);

}  // namespace fastar
