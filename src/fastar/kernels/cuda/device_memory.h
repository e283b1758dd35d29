// Device memory for the CUDA backend (issue 4 builds on this): allocation with an actionable
// out-of-memory error, host <-> device copies, and fp32 -> bf16 conversion on the device.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "fastar/core/tensor.h"

namespace fastar::cuda {

// Number of CUDA devices visible (0 when there is no driver or GPU).
int device_count();
// "NVIDIA H100 80GB HBM3, sm_90, 79.1 GiB" for device `index`.
std::string device_description(int index);

// Allocates `nbytes` on the current device. On failure throws fastar::Error saying how much was
// asked, how much is free, and `hint` (the option that lowers it).
std::shared_ptr<Storage> allocate_device(int64_t nbytes, const std::string& hint);

// Contiguous copies between host and device tensors of the same shape and dtype.
Tensor to_device(const Tensor& host);
Tensor to_host(const Tensor& device);

// out[i] = bf16(in[i]) for count elements, on the device (round to nearest even).
void convert_f32_to_bf16(uint16_t* out, const float* in, int64_t count, void* stream);

}  // namespace fastar::cuda
