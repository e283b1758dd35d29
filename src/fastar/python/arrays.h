// Host tensors as numpy arrays without a copy (docs/python.md, "Zero copy"): the array's buffer is the
// tensor's, and the array owns a reference to the tensor's storage, so the C++ bytes live exactly as
// long as the array (and any view of it) does.
#pragma once

#include <nanobind/nanobind.h>

#include "fastar/core/tensor.h"

namespace fastar::python {

// A numpy array over `tensor` (host; U8 or F32), writable, sharing its storage. The tensor's handle is
// copied into a capsule that the array keeps alive.
nanobind::object numpy_view(const Tensor& tensor);

// A GPU tensor as a DLPack array (nanobind's nb_ndarray: __dlpack__ / __dlpack_device__, so
// torch.from_dlpack, cupy.from_dlpack and jax.dlpack take it without a copy), sharing its storage
// like numpy_view. The tensor must be complete (its stream synchronised) before it is handed out.
nanobind::object dlpack_view(const Tensor& tensor);

}  // namespace fastar::python
