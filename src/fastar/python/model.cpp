// fastar._fastar.Model: a LoadedModel (session/loaded_model.h) for Python.
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <optional>
#include <string>

#include "fastar/python/bindings.h"
#include "fastar/python/model_handle.h"
#include "fastar/session/policy_spec.h"

namespace nb = nanobind;

namespace fastar::python {

void bind_model(nb::module_& m) {
  nb::class_<ModelHandle>(m, "Model", "A model loaded once; any number of sessions share its weights.")
      .def_static(
          "load",
          [](const std::string& path, std::optional<uint64_t> random_weights) {
            nb::gil_scoped_release unlocked;  // reading and checking the weights takes a while
            return ModelHandle{LoadedModel::load(path, random_weights)};
          },
          nb::arg("path"), nb::arg("random_weights") = nb::none(),
          "Loads a model folder (config.json + safetensors) or a weights file; with random_weights, the "
          "config alone with deterministic random weights of that seed.")
      .def_prop_ro("name", [](const ModelHandle& h) { return h.model->name(); })
      .def_prop_ro("has_text_encoder", [](const ModelHandle& h) { return h.model->has_text_encoder(); })
      .def_prop_ro("action_dim", [](const ModelHandle& h) { return h.model->config().action_dim; })
      .def_prop_ro("latent_height", [](const ModelHandle& h) { return h.model->config().latent_height; })
      .def_prop_ro("latent_width", [](const ModelHandle& h) { return h.model->config().latent_width; })
      .def_prop_ro("channels", [](const ModelHandle& h) { return h.model->config().out_dim; })
      .def_prop_ro("num_layers", [](const ModelHandle& h) { return h.model->config().num_layers; })
      .def_prop_ro("dim", [](const ModelHandle& h) { return h.model->config().dim; })
      .def_prop_ro("default_policy", [](const ModelHandle& h) { return default_policy_of(h.model->config()); });
}

}  // namespace fastar::python
