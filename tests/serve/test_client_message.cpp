// The client message parser (serving-spec.md §6.2, §6.6): valid and invalid tables.
#include <gtest/gtest.h>

#include <string>
#include <variant>

#include "fastar/serve/client_message.h"

namespace fastar::serve {
namespace {

bool parses(const std::string& text) { return std::holds_alternative<ClientMessage>(parse_client_message(text)); }

std::string failure(const std::string& text) {
  auto parsed = parse_client_message(text);
  const auto* f = std::get_if<ParseFailure>(&parsed);
  return f ? f->message : "";
}

TEST(ClientMessage, ValidMessagesParse) {
  auto hello = parse_client_message(R"({"type":"hello","v":1,"prompt":"a red circle bounces .","seed":7,"video":"jpeg","actions":true})");
  ASSERT_TRUE(std::holds_alternative<ClientMessage>(hello));
  const auto& h = std::get<HelloMessage>(std::get<ClientMessage>(hello));
  EXPECT_EQ(h.prompt, "a red circle bounces .");
  EXPECT_EQ(h.seed, 7u);

  auto action = std::get<ClientMessage>(parse_client_message(R"({"type":"action","seq":3,"a":"R"})"));
  EXPECT_EQ(std::get<ActionMessage>(action).action, 'R');
  EXPECT_EQ(std::get<ActionMessage>(action).seq, 3u);
  auto keys = std::get<ClientMessage>(parse_client_message(R"({"type":"action","seq":4,"keys":{"left":true,"up":false}})"));
  EXPECT_EQ(std::get<ActionMessage>(keys).action, 'L');
  auto none = std::get<ClientMessage>(parse_client_message(R"({"type":"action","seq":5,"keys":{}})"));
  EXPECT_EQ(std::get<ActionMessage>(none).action, '.');

  auto prompt = std::get<ClientMessage>(parse_client_message(R"({"type":"prompt","seq":1,"text":"a blue square stays .","recache":false})"));
  EXPECT_FALSE(std::get<PromptMessage>(prompt).recache);
  EXPECT_TRUE(parses(R"({"type":"pause","paused":true})"));
  EXPECT_TRUE(parses(R"({"type":"reset"})"));
  EXPECT_TRUE(parses(R"({"type":"reset","seed":9})"));
  EXPECT_TRUE(parses(R"({"type":"ack","frames":12})"));
  EXPECT_TRUE(parses(R"({"type":"bye"})"));
}

TEST(ClientMessage, MalformedMessagesAreRefusedWithAReason) {
  EXPECT_EQ(failure("{"), "not valid JSON");
  EXPECT_EQ(failure(""), "not valid JSON");
  EXPECT_NE(failure("[1,2]").find("JSON object"), std::string::npos);
  EXPECT_NE(failure(R"({"kind":"hello"})").find("'type'"), std::string::npos);
  EXPECT_NE(failure(R"({"type":"teleport"})").find("unknown message type 'teleport'"), std::string::npos);
  EXPECT_NE(failure(R"({"type":"hello","v":2,"prompt":"x"})").find("hello.v"), std::string::npos);
  EXPECT_NE(failure(R"({"type":"hello","v":1})").find("prompt"), std::string::npos);
  EXPECT_NE(failure(R"({"type":"hello","v":1,"prompt":"x","path":"/etc/passwd"})").find("unknown field 'path'"), std::string::npos);
  EXPECT_NE(failure(R"({"type":"hello","v":1,"prompt":"x","video":"h265"})").find("video"), std::string::npos);
  EXPECT_NE(failure(R"({"type":"action","seq":-1,"a":"R"})").find("action.seq"), std::string::npos);
  EXPECT_NE(failure(R"({"type":"action","seq":1,"a":"X"})").find("action.a"), std::string::npos);
  EXPECT_NE(failure(R"({"type":"action","seq":1})").find("exactly one"), std::string::npos);
  EXPECT_NE(failure(R"({"type":"action","seq":1,"keys":{"jump":true}})").find("jump"), std::string::npos);
  EXPECT_NE(failure(R"({"type":"pause","paused":"yes"})").find("pause.paused"), std::string::npos);
  EXPECT_NE(failure(R"({"type":"ack","frames":1.5})").find("ack.frames"), std::string::npos);
  EXPECT_NE(failure(R"({"type":"prompt","seq":1,"text":7})").find("text"), std::string::npos);
  EXPECT_NE(failure(R"({"type":"prompt","seq":1,"text":")" + std::string(600, 'a') + "\"}").find("longer than 512"),
            std::string::npos);
  EXPECT_NE(failure(std::string(kMaxClientMessageBytes + 1, ' ')).find("cap"), std::string::npos);
  EXPECT_EQ(failure("{\"type\":\"prompt\",\"seq\":1,\"text\":\"\xff\xfe\"}"), "not valid JSON");  // not UTF-8
}

}  // namespace
}  // namespace fastar::serve
