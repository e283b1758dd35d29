// What the Python `Model` object holds: a loaded model that any number of sessions share
// (session/loaded_model.h). Sessions keep their own reference, so a model lives as long as its
// last session even when Python has dropped the Model.
#pragma once

#include <memory>

#include "fastar/session/loaded_model.h"

namespace fastar::python {

struct ModelHandle {
  std::shared_ptr<const LoadedModel> model;
};

}  // namespace fastar::python
