#include "fastar/serve/client_message.h"

#include <initializer_list>

#include <nlohmann/json.hpp>

namespace fastar::serve {

namespace {

using nlohmann::json;

// A schema failure on the way through one message: the first one ends the parse.
struct SchemaError {
  std::string message;
};

void only_keys(const json& object, const std::string& type, std::initializer_list<const char*> allowed) {
  for (auto it = object.begin(); it != object.end(); ++it) {
    bool known = false;
    for (const char* key : allowed) known = known || it.key() == key;
    if (!known) throw SchemaError{"unknown field '" + it.key() + "' in a '" + type + "' message"};
  }
}

const json* field(const json& object, const char* key) {
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

uint64_t unsigned_field(const json& object, const std::string& type, const char* key, uint64_t max_value) {
  const json* value = field(object, key);
  if (!value) throw SchemaError{"'" + type + "' needs the field '" + key + "'"};
  if (!value->is_number_unsigned() || value->get<uint64_t>() > max_value)
    throw SchemaError{"'" + type + "." + key + "' must be an integer in [0, " + std::to_string(max_value) + "]"};
  return value->get<uint64_t>();
}

bool bool_field(const json& object, const std::string& type, const char* key, std::optional<bool> fallback) {
  const json* value = field(object, key);
  if (!value) {
    if (fallback) return *fallback;
    throw SchemaError{"'" + type + "' needs the field '" + key + "'"};
  }
  if (!value->is_boolean()) throw SchemaError{"'" + type + "." + key + "' must be true or false"};
  return value->get<bool>();
}

std::string prompt_field(const json& object, const std::string& type, const char* key) {
  const json* value = field(object, key);
  if (!value || !value->is_string()) throw SchemaError{"'" + type + "' needs the text field '" + key + "'"};
  std::string text = value->get<std::string>();
  if (text.size() > kMaxPromptBytes)
    throw SchemaError{"'" + type + "." + key + "' is longer than " + std::to_string(kMaxPromptBytes) + " bytes"};
  return text;
}

VideoCodec video_field(const json& object, const std::string& type) {
  const json* value = field(object, "video");
  if (!value) throw SchemaError{"'" + type + "' needs the field 'video'"};
  std::optional<VideoCodec> codec;
  if (value->is_string()) codec = parse_video_codec(value->get<std::string>());
  if (!codec) throw SchemaError{"'" + type + ".video' must be \"jpeg\" or \"h264\""};
  return *codec;
}

char action_of_keys(const json& keys) {
  if (!keys.is_object()) throw SchemaError{"'action.keys' must be an object {up, down, left, right}"};
  only_keys(keys, "action.keys", {"up", "down", "left", "right"});
  // Several held keys: the first in U, D, L, R order (the world takes one action per frame).
  const std::pair<const char*, char> order[] = {{"up", 'U'}, {"down", 'D'}, {"left", 'L'}, {"right", 'R'}};
  for (const auto& [name, action] : order)
    if (bool_field(keys, "action.keys", name, false)) return action;
  return '.';
}

ClientMessage parse_object(const json& object) {
  const json* type_value = field(object, "type");
  if (!type_value || !type_value->is_string()) throw SchemaError{"every message needs a text field 'type'"};
  const std::string type = type_value->get<std::string>();
  constexpr uint64_t kMaxSeq = 0xffffffffull;
  if (type == "hello") {
    only_keys(object, type, {"type", "v", "prompt", "seed", "video", "actions"});
    if (unsigned_field(object, type, "v", 1000) != 1) throw SchemaError{"'hello.v' must be 1 (this server's protocol)"};
    HelloMessage hello;
    hello.prompt = prompt_field(object, type, "prompt");
    if (field(object, "seed")) hello.seed = unsigned_field(object, type, "seed", (1ull << 53));
    if (field(object, "video")) hello.video = video_field(object, type);
    bool_field(object, type, "actions", true);
    return hello;
  }
  if (type == "action") {
    only_keys(object, type, {"type", "seq", "keys", "a"});
    ActionMessage action;
    action.seq = static_cast<uint32_t>(unsigned_field(object, type, "seq", kMaxSeq));
    const json* a = field(object, "a");
    const json* keys = field(object, "keys");
    if ((a != nullptr) == (keys != nullptr)) throw SchemaError{"'action' needs exactly one of 'a' and 'keys'"};
    if (a) {
      const std::string s = a->is_string() ? a->get<std::string>() : "";
      if (s.size() != 1 || std::string_view(".UDLR").find(s[0]) == std::string_view::npos)
        throw SchemaError{"'action.a' must be one of \".\", \"U\", \"D\", \"L\", \"R\""};
      action.action = s[0];
    } else {
      action.action = action_of_keys(*keys);
    }
    return action;
  }
  if (type == "prompt") {
    only_keys(object, type, {"type", "seq", "text", "recache"});
    PromptMessage prompt;
    prompt.seq = static_cast<uint32_t>(unsigned_field(object, type, "seq", kMaxSeq));
    prompt.text = prompt_field(object, type, "text");
    prompt.recache = bool_field(object, type, "recache", true);
    return prompt;
  }
  if (type == "pause") {
    only_keys(object, type, {"type", "paused"});
    return PauseMessage{bool_field(object, type, "paused", std::nullopt)};
  }
  if (type == "reset") {
    only_keys(object, type, {"type", "seed"});
    ResetMessage reset;
    if (field(object, "seed")) reset.seed = unsigned_field(object, type, "seed", (1ull << 53));
    return reset;
  }
  if (type == "ack") {
    only_keys(object, type, {"type", "frames"});
    return AckMessage{static_cast<int64_t>(unsigned_field(object, type, "frames", (1ull << 53)))};
  }
  if (type == "set_video") {
    only_keys(object, type, {"type", "video"});
    return VideoMessage{video_field(object, type)};
  }
  if (type == "bye") {
    only_keys(object, type, {"type"});
    return ByeMessage{};
  }
  throw SchemaError{"unknown message type '" + type.substr(0, 40) + "'"};
}

}  // namespace

std::variant<ClientMessage, ParseFailure> parse_client_message(std::string_view text) {
  if (text.size() > kMaxClientMessageBytes)
    return ParseFailure{"message of " + std::to_string(text.size()) + " bytes; the cap is " +
                        std::to_string(kMaxClientMessageBytes)};
  const json parsed = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return ParseFailure{"not valid JSON"};
  if (!parsed.is_object()) return ParseFailure{"a message must be a JSON object with a 'type'"};
  try {
    return parse_object(parsed);
  } catch (const SchemaError& e) {
    return ParseFailure{e.message};
  }
}

const char* message_type_name(const ClientMessage& message) {
  static const char* const kNames[] = {"hello", "action", "prompt", "pause", "reset", "ack", "bye", "set_video"};
  return kNames[message.index()];
}

}  // namespace fastar::serve
