// The fastar subcommands. Each returns the process exit code; user errors throw fastar::Error.
#pragma once

namespace fastar::app {

int run_generate(int argc, char** argv);
int run_inspect(int argc, char** argv);
int run_bench(int argc, char** argv);
int run_world(int argc, char** argv);
int run_eval(int argc, char** argv);
int run_serve(int argc, char** argv);

}  // namespace fastar::app
