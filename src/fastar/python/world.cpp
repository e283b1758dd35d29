// fastar._fastar.render_world: the procedural world's ground truth (world/render.h), the frames the
// world model was trained to produce, as a numpy array without a copy.
#include <nanobind/stl/string.h>

#include <string>

#include "fastar/core/error.h"
#include "fastar/python/arrays.h"
#include "fastar/python/bindings.h"
#include "fastar/world/actions.h"
#include "fastar/world/render.h"

namespace nb = nanobind;

namespace fastar::python {

void bind_world(nb::module_& m) {
  m.def(
      "render_world",
      [](const std::string& prompt, const std::string& actions, uint64_t seed, int64_t frames) {
        Tensor rgb;
        {
          nb::gil_scoped_release unlocked;
          FASTAR_CHECK(frames >= 1, "fastar.world.render: frames must be >= 1, got " << frames);
          rgb = world::render_frames(prompt, world::parse_actions(actions, frames), seed, frames);
        }
        return numpy_view(rgb);
      },
      nb::arg("prompt"), nb::arg("actions"), nb::arg("seed"), nb::arg("frames"),
      "The world's frames for (prompt, actions, seed): numpy.uint8 [frames, 64, 64, 3].");
}

}  // namespace fastar::python
