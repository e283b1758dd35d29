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

}  // namespace fastar::python
