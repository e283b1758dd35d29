// fastar: streams video from autoregressive diffusion transformers at constant memory.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "fastar/apps/commands.h"
#include "fastar/core/error.h"

namespace {

const char* kUsage =
    "usage: fastar <command> [options]\n"
    "\n"
    "commands:\n"
    "  generate   roll out a video chunk by chunk and write frames (PNG folder or MP4)\n"
    "  inspect    print a checkpoint's config, tensor count, parameter count and dtypes\n"
    "  bench      time one chunk's forward at several cache depths; 'bench rollout': a whole rollout per policy\n"
    "  world      the procedural world of the small model: render, prompt, dataset, vocab\n"
    "  eval       judge the memory policies on a world model: PSNR/SSIM vs dense, PSNR vs the world, time\n"
    "  serve      stream to a browser page: steer with the keys, switch the prompt live\n"
    "\n"
    "Run 'fastar <command> --help' for the options of a command.\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  try {
    if (command == "generate") return fastar::app::run_generate(argc - 2, argv + 2);
    if (command == "inspect") return fastar::app::run_inspect(argc - 2, argv + 2);
    if (command == "bench") return fastar::app::run_bench(argc - 2, argv + 2);
    if (command == "world") return fastar::app::run_world(argc - 2, argv + 2);
    if (command == "eval") return fastar::app::run_eval(argc - 2, argv + 2);
    if (command == "serve") {
#ifdef FASTAR_NO_SERVE
      std::fprintf(stderr, "error: this fastar was built without `fastar serve` (-DFASTAR_SERVE=OFF); install libboost-dev "
                           "libturbojpeg0-dev and rebuild with -DFASTAR_SERVE=ON\n");
      return 2;
#else
      return fastar::app::run_serve(argc - 2, argv + 2);
#endif
    }
    std::fprintf(stderr, "fastar: unknown command '%s'\n\n%s", command.c_str(), kUsage);
    return 2;
  } catch (const fastar::Error& e) {
    std::fprintf(stderr, "\nerror: %s\n", e.what());
    return 2;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "\nerror: out of host memory; lower --frames, use --policy window, or a smaller --latent-size\n");
    return 3;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "\nerror (unexpected): %s\n", e.what());
    return 1;
  }
}
