// fastar serve: streams a world model (or the procedural world) to a browser page, one session per
// client, steered by the keys and a live prompt (serving-spec.md §6). The server is src/fastar/serve/;
// this command turns options into a Server and runs it until SIGINT / SIGTERM.
#include <algorithm>
#include <optional>
#include <cstdio>
#include <string>
#include <vector>

#include "fastar/apps/args.h"
#include "fastar/apps/commands.h"
#include "fastar/apps/session_cli.h"
#include "fastar/core/error.h"
#include "fastar/serve/model_chunk_source.h"
#include "fastar/serve/server.h"
#include "fastar/serve/video_codec.h"
#include "fastar/serve/world_chunk_source.h"
#include "fastar/session/policy_spec.h"

namespace fastar::app {

namespace {

std::vector<OptionSpec> serve_option_specs() {
  std::vector<OptionSpec> specs = {
      {"model", "PATH", "model folder (config.json + safetensors + vocab.json)", "the shipped models/world-small"},
      {"source", "NAME", "model (a Session per client) | world (the procedural world's renderer: exact, instant)", "model"},
      {"host", "ADDR", "address to bind; anything but loopback needs --allow-origin", "127.0.0.1"},
      {"port", "N", "TCP port; 0 picks a free one (printed)", "8080"},
      {"max-sessions", "N", "clients served at once; more get close 1013", "2"},
      {"allow-origin", "LIST", "comma-separated origins allowed besides the page's own (http://host:port)", ""},
      {"fps", "N", "the rate the page draws frames at", "16"},
      {"lead-chunks", "N", "chunks generated ahead of what the page drew (latency bound); 0 = no cap", "2"},
      {"stall-timeout", "S", "close a session whose socket write makes no progress this long", "10"},
      {"idle-timeout", "S", "close a session without a client message this long", "300"},
      {"hello-timeout", "S", "close a connection that sends no hello this long", "10"},
      {"jpeg-quality", "Q", "JPEG quality of the frames, 1-100", "90"},
      {"codec", "NAME", "jpeg (a JPEG per frame) | h264 (libx264 access units decoded by the page's WebCodecs; "
                        "fewer bytes for large frames; a browser without it gets JPEG)", "jpeg"},
      {"keyframe-interval", "N", "--codec h264: frames between keyframes (also one at the start and at each reset)", "32"},
      {"h264-crf", "N", "--codec h264: libx264's constant rate factor, 0 (lossless) - 51; lower is better", "20"},
      {"max-message-rate", "N", "client messages per second per session (bursts of N); over it: an error, then close 1008; 0 = no cap", "50"},
      {"outbox-bytes", "N", "a session waits while this many bytes are queued for its socket (and at most 2 chunks); 0 = no byte cap", "8388608"},
      {"policy", "NAME", "cross-frame memory of --source model: dense | window | tempcache | arl2, +window, +annsa, +annca",
       "the model's fastar_defaults"},
  };
  for (const auto* extra : {&rollout_option_specs(), &policy_option_specs()}) specs.insert(specs.end(), extra->begin(), extra->end());
  return specs;
}

}  // namespace

int run_serve(int argc, char** argv) {
  const std::vector<OptionSpec> specs = serve_option_specs();
  Args args("serve", specs, argc, argv);
  if (args.help()) {
    std::fputs(format_help("fastar serve [--model PATH] [--device cpu|cuda] [--host 127.0.0.1] [--port 8080] "
                           "[--max-sessions N] [--source model|world]",
                           "Serves a page that streams the model's video to the browser: arrow keys / WASD steer the\n"
                           "player, the prompt box switches the prompt live (with or without re-cache). One session per\n"
                           "client; GET /healthz and /metrics report on them. Ctrl-C closes every session cleanly.",
                           specs)
                   .c_str(),
               stdout);
    return 0;
  }
  FASTAR_CHECK(args.positional().empty(), "fastar serve: unexpected argument '" << args.positional()[0] << "' (see fastar serve --help)");

  serve::ServerOptions options;
  options.host = args.get("host", "127.0.0.1");
  options.port = static_cast<uint16_t>(args.get_int("port", 8080, 0, 65535));
  options.max_sessions = static_cast<int>(args.get_int("max-sessions", 2, 1, 1024));
  options.allowed_origins = split_list(args.get("allow-origin", ""));
  options.jpeg_quality = static_cast<int>(args.get_int("jpeg-quality", 90, 1, 100));
  const std::string codec = args.get("codec", "jpeg");
  const std::optional<serve::VideoCodec> parsed_codec = serve::parse_video_codec(codec);
  FASTAR_CHECK(parsed_codec, "fastar serve: --codec must be jpeg or h264 (got '" << codec << "')");
  FASTAR_CHECK(*parsed_codec != serve::VideoCodec::H264 || serve::h264_available(),
               "fastar serve: --codec h264 needs FFmpeg's libavcodec, and this fastar was built with FASTAR_VIDEO=OFF; "
               "rebuild with -DFASTAR_VIDEO=ON (Debian: libavcodec-dev libswscale-dev), or use --codec jpeg");
  options.media.codec = *parsed_codec;
  options.media.h264.keyframe_interval = static_cast<int>(args.get_int("keyframe-interval", 32, 1, 100000));
  options.media.h264.crf = static_cast<int>(args.get_int("h264-crf", 20, 0, 51));
  options.timeouts.stall_s = args.get_double("stall-timeout", 10);
  options.timeouts.idle_s = args.get_double("idle-timeout", 300);
  options.timeouts.hello_s = args.get_double("hello-timeout", 10);
  options.message_rate.per_second = args.get_double("max-message-rate", 50);
  options.message_rate.burst = std::max(1.0, options.message_rate.per_second);
  options.limits.outbox_bytes = args.get_int("outbox-bytes", 8 << 20, 0, int64_t{1} << 40);
  options.handle_signals = true;
  const double fps = args.get_double("fps", 16);
  FASTAR_CHECK(fps > 0 && fps <= 240, "fastar serve: --fps must be in (0, 240] (got " << fps << ")");
  const int64_t lead_chunks = args.get_int("lead-chunks", 2, 0, 64);

  serve::RequestGuard guard{options.host, options.port, options.allowed_origins};
  FASTAR_CHECK(guard.loopback() || !options.allowed_origins.empty(),
               "fastar serve: --host " << options.host << " exposes the server beyond this machine; also pass "
               "--allow-origin http://NAME:PORT with the address browsers will use (serving-spec.md §6.6)");
  if (!guard.loopback()) std::fprintf(stderr, "warning: fastar serve listens on %s, not only on loopback\n", options.host.c_str());

  const std::string source = args.get("source", "model");
  std::unique_ptr<serve::ChunkSourceFactory> factory;
  if (source == "world") {
    factory = serve::make_world_source_factory(static_cast<int>(args.get_int("chunk-frames", 3, 1, 1024)), fps);
  } else {
    FASTAR_CHECK(source == "model", "fastar serve: --source must be model or world (got '" << source << "')");
    std::shared_ptr<const LoadedModel> model = load_model_from_args(args, "fastar serve");
    SessionOptions session_options = session_options_from_args(args, "fastar serve");
    // One trial session checks the policy and the device now, not at the first client.
    Session trial(model, session_options, SessionPrompt::none());
    std::fprintf(stderr, "%s\n", trial.describe().c_str());
    factory = serve::make_model_source_factory(model, session_options, fps);
  }
  options.limits.lead_frames = lead_chunks * factory->info().chunk_frames;

  serve::Server server(options, std::move(factory));
  const uint16_t port = server.start();
  std::printf("fastar serve: http://%s:%u/ (%s source, %s; Ctrl-C to stop)\n",
              guard.loopback() ? "127.0.0.1" : options.host.c_str(), port, source.c_str(), codec.c_str());
  std::fflush(stdout);
  server.wait();
  std::printf("fastar serve: stopped\n");
  return 0;
}

}  // namespace fastar::app
