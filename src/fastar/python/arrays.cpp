#include "fastar/python/arrays.h"

#include <nanobind/ndarray.h>

#include <vector>

#ifdef FASTAR_HAVE_CUDA
#include <cuda_runtime.h>
#endif

#include "fastar/core/error.h"

namespace nb = nanobind;

namespace fastar::python {

namespace {

nb::dlpack::dtype dlpack_dtype(DType dtype) {
  switch (dtype) {
    case DType::U8: return nb::dtype<uint8_t>();
    case DType::F32: return nb::dtype<float>();
    case DType::I64: return nb::dtype<int64_t>();
    case DType::I32: return nb::dtype<int32_t>();
    default: break;
  }
  FASTAR_FAIL("fastar (Python): a " << dtype_name(dtype) << " tensor cannot be handed to numpy");
}

}  // namespace

nb::object numpy_view(const Tensor& tensor) {
  FASTAR_ASSERT(tensor.defined() && tensor.device() == Device::CPU, "numpy_view needs a host tensor");
  // The capsule owns a handle on the storage: deleting the last array deletes the handle, which frees
  // the bytes when no C++ tensor uses them either.
  auto* owner = new Tensor(tensor);
  nb::capsule keep_alive(owner, [](void* p) noexcept { delete static_cast<Tensor*>(p); });
  std::vector<size_t> shape(tensor.shape().begin(), tensor.shape().end());
  const std::vector<int64_t> strides(tensor.strides().begin(), tensor.strides().end());
  nb::ndarray<nb::numpy> array(owner->raw_data(), shape.size(), shape.data(), keep_alive, strides.data(),
                               dlpack_dtype(tensor.dtype()));
  return array.cast();
}

nb::object dlpack_view(const Tensor& tensor) {
  FASTAR_ASSERT(tensor.defined() && tensor.device() == Device::CUDA, "dlpack_view needs a device tensor");
  int device_id = 0;
#ifdef FASTAR_HAVE_CUDA
  // The storage lives on the device that was current when it was allocated: this process's one.
  FASTAR_CHECK(cudaGetDevice(&device_id) == cudaSuccess, "fastar (Python): no current CUDA device");
#endif
  auto* owner = new Tensor(tensor);
  nb::capsule keep_alive(owner, [](void* p) noexcept { delete static_cast<Tensor*>(p); });
  std::vector<size_t> shape(tensor.shape().begin(), tensor.shape().end());
  const std::vector<int64_t> strides(tensor.strides().begin(), tensor.strides().end());
  nb::ndarray<> array(owner->raw_data(), shape.size(), shape.data(), keep_alive, strides.data(), dlpack_dtype(tensor.dtype()),
                      nb::device::cuda::value, device_id);
  return array.cast();
}

}  // namespace fastar::python
