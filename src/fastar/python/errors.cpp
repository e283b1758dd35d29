// C++ errors as Python exceptions (docs/python.md, "Errors"). fastar::Error is a user or configuration
// error with a message that says what to do (docs/design.md, "core"); Python gets that message in
//   MemoryError        out of memory: std::bad_alloc (nanobind's own mapping), a host or CUDA allocation,
//                      a policy whose preallocated memory does not fit on the device, random weights
//                      larger than the machine's memory;
//   FileNotFoundError  a file or folder that does not exist;
//   ValueError         everything else the user can fix: a bad option, prompt, action or checkpoint.
// Other C++ exceptions keep nanobind's mapping (std::runtime_error → RuntimeError).
#include <Python.h>

#include <exception>
#include <string>

#include "fastar/core/error.h"
#include "fastar/python/bindings.h"

namespace fastar::python {
namespace {

bool mentions(const std::string& text, const char* what) { return text.find(what) != std::string::npos; }

PyObject* python_type_of(const std::string& message) {
  if (mentions(message, "out of memory") || mentions(message, "out of host memory") ||
      mentions(message, "out of device memory") || mentions(message, "does not fit") ||
      mentions(message, "more than this machine's"))
    return PyExc_MemoryError;
  if (mentions(message, "No such file or directory")) return PyExc_FileNotFoundError;
  return PyExc_ValueError;
}

}  // namespace

void bind_errors(nanobind::module_& m) {
  // Translators registered later are tried first, so this one sees fastar::Error before nanobind's
  // std::exception fallback does.
  nanobind::register_exception_translator([](const std::exception_ptr& error, void*) {
    try {
      std::rethrow_exception(error);
    } catch (const Error& e) {
      const std::string message = e.what();
      PyErr_SetString(python_type_of(message), message.c_str());
    }
  });
}

}  // namespace fastar::python
