// fastar._fastar: the compiled half of the Python package (bindings.h).
#include "fastar/python/bindings.h"

NB_MODULE(_fastar, m) {
  m.doc() = "fastar's compiled core: models, sessions and chunks (use the `fastar` package, not this module)";
  fastar::python::bind_errors(m);
  fastar::python::bind_model(m);
  fastar::python::bind_session(m);
  fastar::python::bind_world(m);
}
