// The Python package's compiled module `fastar._fastar` (docs/python.md): one function per part, each
// in its own file, called by module.cpp. The module is a thin front end over the session layer
// (docs/design.md, "apps"); the idiomatic API (load, stream, iteration) is Python in python/fastar.
#pragma once

#include <nanobind/nanobind.h>

namespace fastar::python {

void bind_errors(nanobind::module_& m);   // errors.cpp: fastar::Error → ValueError / FileNotFoundError / MemoryError
void bind_model(nanobind::module_& m);    // model.cpp: Model (a LoadedModel shared by sessions)
void bind_session(nanobind::module_& m);  // session.cpp: Session and Chunk
void bind_world(nanobind::module_& m);    // world.cpp: the procedural world's ground-truth renderer

}  // namespace fastar::python
