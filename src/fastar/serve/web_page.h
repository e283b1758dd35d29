// The client page (serving-spec.md §6.7), compiled into the binary: nothing is read from disk at
// request time. No framework: a canvas, a prompt box, pause / resume / reset, a live overlay and a
// small plot; the keys are sent as latest state; `window.fastarTest` exposes counters to the tests.
#pragma once

namespace fastar::serve {

extern const char* const kIndexHtml;
extern const char* const kAppJs;

}  // namespace fastar::serve
