#include "fastar/core/tensor.h"

#include <cstdlib>
#include <cstring>
#include <new>
#include <sstream>

#include "fastar/core/error.h"

namespace fastar {

std::shared_ptr<Storage> Storage::allocate_host(int64_t nbytes) {
  FASTAR_ASSERT(nbytes >= 0, "negative allocation " << nbytes);
  const size_t rounded = (static_cast<size_t>(nbytes) + 63) / 64 * 64;
  void* data = rounded ? std::aligned_alloc(64, rounded) : nullptr;
  FASTAR_CHECK(rounded == 0 || data != nullptr,
               "out of host memory: could not allocate " << nbytes << " bytes; close other programs or "
                                                           "choose a smaller model, frame count or window");
  if (data) std::memset(data, 0, rounded);
  auto storage = std::shared_ptr<Storage>(new Storage());
  storage->data_ = data;
  storage->nbytes_ = nbytes;
  storage->release_ = [](void* p) { std::free(p); };
  return storage;
}

std::shared_ptr<Storage> Storage::borrow(void* data, int64_t nbytes, std::shared_ptr<void> keep_alive, Device device) {
  auto storage = std::shared_ptr<Storage>(new Storage());
  storage->data_ = data;
  storage->nbytes_ = nbytes;
  storage->device_ = device;
  storage->keep_alive_ = std::move(keep_alive);
  return storage;
}

std::shared_ptr<Storage> Storage::adopt(void* data, int64_t nbytes, Device device, std::function<void(void*)> release) {
  auto storage = std::shared_ptr<Storage>(new Storage());
  storage->data_ = data;
  storage->nbytes_ = nbytes;
  storage->device_ = device;
  storage->release_ = std::move(release);
  return storage;
}

Storage::~Storage() {
  if (release_ && data_) release_(data_);
}

std::string shape_to_string(const Shape& shape) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << "]";
  return out.str();
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t extent : shape) n *= extent;
  return n;
}

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t stride = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= shape[i];
  }
  return strides;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype) {
  for (int64_t extent : shape) FASTAR_ASSERT(extent >= 0, "negative extent in " << shape_to_string(shape));
  return from_storage(Storage::allocate_host(shape_numel(shape) * dtype_size(dtype)), 0, shape, dtype);
}

Tensor Tensor::from_storage(std::shared_ptr<Storage> storage, int64_t offset_bytes, const Shape& shape, DType dtype) {
  Tensor t;
  FASTAR_ASSERT(offset_bytes + shape_numel(shape) * dtype_size(dtype) <= storage->nbytes(),
                "tensor " << shape_to_string(shape) << " runs past its storage");
  t.storage_ = std::move(storage);
  t.offset_bytes_ = offset_bytes;
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  t.dtype_ = dtype;
  return t;
}

int64_t Tensor::size(int64_t axis) const {
  if (axis < 0) axis += dim();
  FASTAR_ASSERT(axis >= 0 && axis < dim(), "axis " << axis << " out of range for " << describe());
  return shape_[static_cast<size_t>(axis)];
}

int64_t Tensor::stride(int64_t axis) const {
  if (axis < 0) axis += dim();
  FASTAR_ASSERT(axis >= 0 && axis < dim(), "axis " << axis << " out of range for " << describe());
  return strides_[static_cast<size_t>(axis)];
}

bool Tensor::is_contiguous() const { return strides_ == contiguous_strides(shape_); }

void* Tensor::raw_data() const {
  if (!storage_) return nullptr;
  return static_cast<char*>(storage_->data()) + offset_bytes_;
}

Tensor Tensor::reshape(const Shape& shape) const {
  FASTAR_ASSERT(is_contiguous(), "reshape of a non-contiguous tensor " << describe());
  FASTAR_ASSERT(shape_numel(shape) == numel(), "reshape " << describe() << " to " << shape_to_string(shape));
  Tensor t = *this;
  t.shape_ = shape;
  t.strides_ = contiguous_strides(shape);
  return t;
}

Tensor Tensor::slice_rows(int64_t begin, int64_t end) const {
  FASTAR_ASSERT(dim() >= 1 && begin >= 0 && begin <= end && end <= shape_[0],
                "slice [" << begin << ", " << end << ") of " << describe());
  Tensor t = *this;
  t.offset_bytes_ += begin * strides_[0] * dtype_size(dtype_);
  t.shape_[0] = end - begin;
  return t;
}

Tensor Tensor::to_dtype(DType dtype) const {
  FASTAR_ASSERT(device() == Device::CPU, "to_dtype on a device tensor");
  FASTAR_ASSERT(is_contiguous(), "to_dtype of a non-contiguous tensor " << describe());
  Tensor out = zeros(shape_, dtype);
  if (dtype == dtype_) {
    std::memcpy(out.raw_data(), raw_data(), static_cast<size_t>(nbytes()));
  } else if (dtype == DType::F32) {
    convert_to_f32(raw_data(), dtype_, out.data<float>(), numel());
  } else {
    Tensor f32 = to_f32();
    convert_from_f32(f32.data<float>(), out.raw_data(), dtype, numel());
  }
  return out;
}

Tensor Tensor::to_f32() const { return to_dtype(DType::F32); }
Tensor Tensor::clone() const { return to_dtype(dtype_); }

std::string Tensor::describe() const { return std::string(dtype_name(dtype_)) + shape_to_string(shape_); }

}  // namespace fastar
