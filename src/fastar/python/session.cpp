// fastar._fastar.Session and Chunk: a fastar::Session (session/session.h) for Python.
//
// The GIL is released while the engine works (a chunk, a prompt switch, a reset, opening and closing),
// so other Python threads, and other sessions, run meanwhile. A mutex serialises the calls on one
// session: a second thread's call waits for the first, and close() waits for a chunk in flight.
// Chunks hand their frames and latent to numpy without a copy (arrays.h).
#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>
#include <omp.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "fastar/core/error.h"
#include "fastar/python/arrays.h"
#include "fastar/python/bindings.h"
#include "fastar/python/model_handle.h"
#include "fastar/session/session.h"

namespace nb = nanobind;

namespace fastar::python {
namespace {

// Sessions alive in this process (the tests' check that every way out of a stream frees it).
std::atomic<int64_t> live_sessions{0};

nb::object maybe(double value) { return value < 0 ? nb::none() : nb::cast(value); }
nb::object maybe(int64_t value) { return value < 0 ? nb::none() : nb::cast(value); }

// MemoryStats as a dict; statistics a policy does not have (−1 in C++) are None.
nb::dict stats_dict(const MemoryStats& s) {
  nb::dict d;
  d["bytes"] = s.bytes;
  d["cached_frames"] = s.cached_frames;
  d["kv_density"] = maybe(s.kv_density);
  d["merges"] = maybe(s.merges);
  d["density"] = maybe(s.density);
  d["recall"] = maybe(s.recall);
  d["cross_density"] = maybe(s.cross_density);
  d["cross_recall"] = maybe(s.cross_recall);
  return d;
}

// A chunk as Python sees it: numpy arrays over the C++ buffers, and plain numbers.
struct PyChunk {
  int64_t index = 0, frame_start = 0, frame_count = 0;
  double ms = 0;
  nb::dict stats;
  nb::object frames, latent;
  uintptr_t frames_address = 0;  // Chunk::rgb's bytes: what the zero-copy test compares with
};

PyChunk to_python(const Chunk& chunk) {
  PyChunk out;
  out.index = chunk.index;
  out.frame_start = chunk.frame_start;
  out.frame_count = static_cast<int64_t>(chunk.frames.size());
  out.ms = chunk.ms;
  out.stats = stats_dict(chunk.stats);
  // A GPU session's frames stay on the device (DLPack); a CPU session's are a numpy array.
  const Tensor& frames = chunk.device_rgb.defined() ? chunk.device_rgb : chunk.rgb;
  out.frames = chunk.device_rgb.defined() ? dlpack_view(frames) : numpy_view(frames);
  out.latent = numpy_view(chunk.latent);
  out.frames_address = reinterpret_cast<uintptr_t>(frames.raw_data());
  return out;
}

class PySession {
 public:
  PySession(const ModelHandle& model, std::optional<std::string> prompt, std::string policy, OptionMap options,
            const std::string& device, uint64_t seed, int64_t chunk_frames, int64_t frames, std::string schedule,
            std::vector<float> steps, int threads)
      : threads_(threads) {
    FASTAR_CHECK(threads >= 0, "fastar: threads must be >= 0 (0 = all cores), got " << threads);
    FASTAR_CHECK(frames >= 0, "fastar: frames must be >= 0, got " << frames);
    SessionOptions o;
    o.policy = std::move(policy);
    o.policy_options = std::move(options);
    o.device = parse_device(device, "fastar");
    o.seed = seed;
    o.chunk_frames = chunk_frames;
    o.frames = frames;
    o.schedule = std::move(schedule);
    o.steps = std::move(steps);
    o.who = "fastar";
    o.device_frames = o.device == Device::CUDA;  // chunk.frames on the GPU (DLPack)
    const SessionPrompt p = prompt ? SessionPrompt::from_text(*prompt) : SessionPrompt::none();
    nb::gil_scoped_release unlocked;
    use_threads();
    session_ = std::make_unique<Session>(model.model, std::move(o), p);
    ++live_sessions;
  }

  ~PySession() {
    if (session_) --live_sessions;
  }

  PyChunk next_chunk(const std::string& actions, bool commit) {
    Chunk chunk;
    {
      nb::gil_scoped_release unlocked;
      std::lock_guard<std::mutex> lock(mutex_);
      use_threads();
      chunk = actions.empty() ? open().next_chunk(nullptr, commit) : open().next_chunk(actions, commit);
    }
    return to_python(chunk);
  }

  void set_prompt(const std::optional<std::string>& text, bool recache, bool keep_sink) {
    const SessionPrompt p = text ? SessionPrompt::from_text(*text) : SessionPrompt::none();
    nb::gil_scoped_release unlocked;
    std::lock_guard<std::mutex> lock(mutex_);
    use_threads();
    open().set_prompt(p, PromptSwitch{.recache = recache, .keep_sink = keep_sink});
  }

  void reset(uint64_t seed) {
    nb::gil_scoped_release unlocked;
    std::lock_guard<std::mutex> lock(mutex_);
    open().reset(seed);
  }

  void close() {
    nb::gil_scoped_release unlocked;
    std::lock_guard<std::mutex> lock(mutex_);
    if (!session_) return;
    session_.reset();
    --live_sessions;
  }

  bool closed() const { return !session_; }
  // The queries take the lock too (close() may run in another thread), without the GIL: they may
  // wait for a chunk in flight.
  template <typename F>
  auto query(F&& f) {
    nb::gil_scoped_release unlocked;
    std::lock_guard<std::mutex> lock(mutex_);
    return f(open());
  }

 private:
  Session& open() {
    FASTAR_CHECK(session_, "fastar: this stream is closed");
    return *session_;
  }
  // OpenMP's thread count is a per-thread setting: apply it in the thread that runs the engine.
  void use_threads() const {
    if (threads_ > 0) omp_set_num_threads(threads_);
  }

  std::mutex mutex_;
  std::unique_ptr<Session> session_;
  int threads_ = 0;
};

}  // namespace

void bind_session(nb::module_& m) {
  nb::class_<PyChunk>(m, "Chunk", "One chunk of a stream: its frames, its clean latent and the policy's statistics.")
      .def_ro("index", &PyChunk::index, "Chunks since the start of the stream (or its last reset).")
      .def_ro("frame_start", &PyChunk::frame_start, "Latent frame index of the chunk's first frame.")
      .def_ro("ms", &PyChunk::ms, "Wall time of the chunk in milliseconds.")
      .def_prop_ro("stats", [](const PyChunk& c) { return c.stats; }, "The policy's memory and statistics after the chunk.")
      .def_prop_ro("frames", [](const PyChunk& c) { return c.frames; },
                   "The chunk's RGB frames uint8 [frames, height, width, 3] over the engine's buffer (no copy): a numpy "
                   "array on the CPU; on the GPU a DLPack array on the device (torch.from_dlpack(chunk.frames)), complete "
                   "when the chunk is returned.")
      .def_prop_ro("latent", [](const PyChunk& c) { return c.latent; },
                   "numpy.float32 [channels, frames, height, width]: the clean latent x0 (no copy).")
      .def_ro("frames_address", &PyChunk::frames_address,
              "Address of the engine's frame buffer that `frames` points into (the C++ Chunk::rgb; on the GPU "
              "Chunk::device_rgb, a device address).")
      .def("__len__", [](const PyChunk& c) { return c.frame_count; })
      .def("__repr__", [](const PyChunk& c) {
        return "Chunk(index=" + std::to_string(c.index) + ", frame_start=" + std::to_string(c.frame_start) + ", frames=" +
               std::to_string(c.frame_count) + ", ms=" + std::to_string(c.ms) + ")";
      });

  nb::class_<PySession>(m, "Session", "A fastar::Session: one stream over a model (use fastar.Model.stream).")
      .def(nb::init<const ModelHandle&, std::optional<std::string>, std::string, OptionMap, const std::string&, uint64_t,
                    int64_t, int64_t, std::string, std::vector<float>, int>(),
           nb::arg("model"), nb::arg("prompt").none(), nb::arg("policy") = "", nb::arg("options") = OptionMap{},
           nb::arg("device") = "cpu", nb::arg("seed") = 0, nb::arg("chunk_frames") = 3, nb::arg("frames") = 0,
           nb::arg("schedule") = "self-forcing", nb::arg("steps") = std::vector<float>{}, nb::arg("threads") = 0)
      .def("next_chunk", &PySession::next_chunk, nb::arg("actions") = "", nb::arg("commit") = true)
      .def("set_prompt", &PySession::set_prompt, nb::arg("text").none(), nb::arg("recache") = true, nb::arg("keep_sink") = false)
      .def("reset", &PySession::reset, nb::arg("seed"))
      .def("close", &PySession::close)
      .def_prop_ro("closed", &PySession::closed)
      .def("stats", [](PySession& s) { return stats_dict(s.query([](Session& x) { return x.stats(); })); })
      .def("describe", [](PySession& s) { return s.query([](Session& x) { return x.describe(); }); })
      .def("report", [](PySession& s) { return s.query([](Session& x) { return x.report(); }); })
      .def("stats_json", [](PySession& s) { return s.query([](Session& x) { return x.stats_json(); }); })
      .def_prop_ro("policy", [](PySession& s) { return s.query([](Session& x) { return x.policy().name(); }); })
      .def_prop_ro("chunk_frames", [](PySession& s) { return s.query([](Session& x) { return x.chunk_frames(); }); })
      .def_prop_ro("frames_generated", [](PySession& s) { return s.query([](Session& x) { return x.frames_generated(); }); })
      .def_prop_ro("frame_capacity", [](PySession& s) { return s.query([](Session& x) { return x.frame_capacity(); }); })
      .def_prop_ro("memory_in_use", [](PySession& s) { return s.query([](Session& x) { return x.memory_in_use(); }); });

  m.def(
      "cuda_available",
      [] {
#ifdef FASTAR_HAVE_CUDA
        return true;
#else
        return false;
#endif
      },
      "True when this build has the CUDA backend (device=\"cuda\"); whether a GPU is present is another matter.");
  m.def("live_sessions", [] { return live_sessions.load(); }, "Sessions alive in this process (open, not yet freed).");
  m.def("policy_options", [] {
    std::vector<std::string> names;
    for (const OptionSpec& spec : policy_option_specs()) names.push_back(spec.name);
    return names;
  }, "The names of the policy options (the CLI's --name without dashes).");
  m.def("is_policy_option", &is_policy_option, nb::arg("name"));
}

}  // namespace fastar::python
