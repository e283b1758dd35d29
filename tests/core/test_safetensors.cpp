#include "fastar/core/safetensors.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fastar/core/error.h"
#include "test_util.h"

namespace fastar {
namespace {

namespace fs = std::filesystem;

// The message of the fastar::Error that `f` throws; a test failure if it throws none.
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a fastar::Error";
  return "";
}

#define EXPECT_CONTAINS(text, part) \
  EXPECT_NE(std::string(text).find(part), std::string::npos) << "'" << (text) << "' lacks '" << (part) << "'"

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

// A raw safetensors file: length prefix, header text, data bytes (no validation, for corruptions).
std::string raw_file(const std::string& header, const std::string& data, uint64_t header_len_override = 0) {
  const uint64_t len = header_len_override ? header_len_override : header.size();
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((len >> (8 * i)) & 0xff);
  return out + header + data;
}

uint64_t header_length(const std::string& bytes) {
  uint64_t len = 0;
  for (int i = 7; i >= 0; --i) len = (len << 8) | static_cast<unsigned char>(bytes[static_cast<size_t>(i)]);
  return len;
}

Tensor f32_tensor(const Shape& shape, float start) {
  Tensor t = Tensor::zeros(shape, DType::F32);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = start + 0.5f * static_cast<float>(i);
  return t;
}

// Opens `bytes` written to `path`; returns the error message (empty: it opened).
std::string open_error(const std::string& path, const std::string& bytes) {
  write_bytes(path, bytes);
  return error_of([&] { Checkpoint::open(path); });
}

TEST(Safetensors, RoundtripDtypesZeroSizeAndMetadata) {
  const std::string dir = testing::make_temp_dir("st_roundtrip");
  const std::string path = dir + "/model.safetensors";

  Tensor f32 = f32_tensor({2, 3}, -1.0f);
  Tensor bf16 = Tensor::zeros({4}, DType::BF16);
  Tensor f16 = Tensor::zeros({3}, DType::F16);
  for (int i = 0; i < 4; ++i) bf16.data<uint16_t>()[i] = f32_to_bf16(0.25f * static_cast<float>(i) - 0.3f);
  for (int i = 0; i < 3; ++i) f16.data<uint16_t>()[i] = f32_to_f16(1.5f * static_cast<float>(i) + 0.1f);
  Tensor i32 = Tensor::zeros({2, 2}, DType::I32);
  for (int i = 0; i < 4; ++i) i32.data<int32_t>()[i] = -7 + 1000 * i;
  Tensor empty = Tensor::zeros({0, 5}, DType::F32);
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"note", "fastar test"}};

  // Deliberately not in name order: the data must follow the given order.
  write_safetensors(path, {{"z.weight", f32}, {"b.bf16", bf16}, {"a.f16", f16}, {"ints", i32}, {"empty", empty}},
                    metadata);
  for (const auto& item : fs::directory_iterator(dir))
    EXPECT_EQ(item.path().filename().string(), "model.safetensors") << "temporary file left behind";

  const std::string bytes = read_bytes(path);
  const uint64_t header_len = header_length(bytes);
  EXPECT_EQ((8 + header_len) % 8, 0u);
  EXPECT_EQ(bytes.size(), 8 + header_len + (24 + 8 + 6 + 16));
  // The first tensor given starts the data section.
  EXPECT_EQ(std::memcmp(bytes.data() + 8 + header_len, f32.raw_data(), 24), 0);

  Tensor kept;
  {
    const Checkpoint ckpt = Checkpoint::open(path);
    EXPECT_EQ(ckpt.path(), path);
    EXPECT_EQ(ckpt.files(), std::vector<std::string>{path});
    EXPECT_EQ(ckpt.num_tensors(), 5);
    EXPECT_EQ(ckpt.names(), (std::vector<std::string>{"a.f16", "b.bf16", "empty", "ints", "z.weight"}));
    EXPECT_EQ(ckpt.metadata(), metadata);
    EXPECT_EQ(ckpt.find("nope"), nullptr);

    const std::vector<std::pair<std::string, Tensor>> expected = {
        {"z.weight", f32}, {"b.bf16", bf16}, {"a.f16", f16}, {"ints", i32}, {"empty", empty}};
    for (const auto& [name, want] : expected) {
      SCOPED_TRACE(name);
      const TensorEntry* entry = ckpt.find(name);
      ASSERT_NE(entry, nullptr);
      EXPECT_EQ(&ckpt.at(name), entry);
      EXPECT_EQ(entry->name, name);
      EXPECT_EQ(entry->dtype, want.dtype());
      EXPECT_EQ(entry->shape, want.shape());
      EXPECT_EQ(entry->file, path);
      EXPECT_EQ(entry->nbytes, want.nbytes());
      if (want.nbytes() > 0) {
        EXPECT_EQ(std::memcmp(entry->data, want.raw_data(), static_cast<size_t>(want.nbytes())), 0);
      }

      const Tensor t = ckpt.tensor(name);
      EXPECT_EQ(t.dtype(), want.dtype());
      EXPECT_EQ(t.shape(), want.shape());
      if (want.nbytes() > 0) {
        EXPECT_EQ(std::memcmp(t.raw_data(), want.raw_data(), static_cast<size_t>(want.nbytes())), 0);
        EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw_data()) % static_cast<uintptr_t>(dtype_size(t.dtype())), 0u);
      }
      // "ints" follows 24 + 8 + 6 bytes of data, so it sits at a 2-aligned address and is copied;
      // everything else is aligned (or empty) and borrowed from the mapping.
      if (name == "ints") {
        EXPECT_NE(t.raw_data(), entry->data);
      } else {
        EXPECT_EQ(t.raw_data(), entry->data) << "tensor() should be zero-copy when aligned";
      }
    }
    EXPECT_EQ(ckpt.tensor("b.bf16").data<uint16_t>()[3], bf16.data<uint16_t>()[3]);
    EXPECT_EQ(ckpt.tensor("ints").data<int32_t>()[3], 2993);
    kept = ckpt.tensor("z.weight");
  }
  // The tensor keeps the mapping alive after the Checkpoint is gone.
  for (int64_t i = 0; i < 6; ++i) EXPECT_EQ(kept.data<float>()[i], -1.0f + 0.5f * static_cast<float>(i));
}

TEST(Safetensors, WriteRejectsBadInputAndLeavesNoTemporary) {
  const std::string dir = testing::make_temp_dir("st_write_errors");
  const std::string missing_dir = dir + "/no/such/dir/x.safetensors";
  std::string msg = error_of([&] { write_safetensors(missing_dir, {{"a", f32_tensor({2}, 0)}}); });
  EXPECT_CONTAINS(msg, missing_dir);
  EXPECT_CONTAINS(msg, "cannot create");

  const std::string path = dir + "/x.safetensors";
  msg = error_of([&] { write_safetensors(path, {{"a", f32_tensor({2}, 0)}, {"a", f32_tensor({1}, 0)}}); });
  EXPECT_CONTAINS(msg, "given twice");
  msg = error_of([&] { write_safetensors(path, {{"__metadata__", f32_tensor({2}, 0)}}); });
  EXPECT_CONTAINS(msg, "reserved");
  msg = error_of([&] { write_safetensors(path, {{"u", Tensor()}}); });
  EXPECT_CONTAINS(msg, "undefined");
  EXPECT_TRUE(fs::is_empty(dir));

  // Overwriting an existing file replaces it whole.
  write_safetensors(path, {{"a", f32_tensor({8}, 0)}});
  write_safetensors(path, {{"b", f32_tensor({1}, 3)}});
  const Checkpoint ckpt = Checkpoint::open(path);
  EXPECT_EQ(ckpt.names(), std::vector<std::string>{"b"});
  EXPECT_EQ(ckpt.tensor("b").data<float>()[0], 3.0f);
}

// Two shards and an index, as the Hugging Face tools lay them out.
void write_sharded(const std::string& dir, const std::string& stem) {
  write_safetensors(dir + "/" + stem + "-00001-of-00002.safetensors",
                    {{"blocks.0.w", f32_tensor({2, 2}, 1)}, {"blocks.0.b", f32_tensor({2}, 10)}}, {{"shard", "1"}});
  write_safetensors(dir + "/" + stem + "-00002-of-00002.safetensors", {{"blocks.1.w", f32_tensor({3}, 20)}},
                    {{"shard", "2"}});
  const nlohmann::json index = {
      {"metadata", {{"total_size", 36}}},
      {"weight_map",
       {{"blocks.0.w", stem + "-00001-of-00002.safetensors"},
        {"blocks.0.b", stem + "-00001-of-00002.safetensors"},
        {"blocks.1.w", stem + "-00002-of-00002.safetensors"}}}};
  write_bytes(dir + "/" + stem + ".safetensors.index.json", index.dump(2));
}

TEST(Safetensors, ShardedThroughIndex) {
  const std::string dir = testing::make_temp_dir("st_sharded");
  write_sharded(dir, "model");
  const std::string index = dir + "/model.safetensors.index.json";
  const Checkpoint ckpt = Checkpoint::open(index);
  EXPECT_EQ(ckpt.path(), index);
  const std::string shard1 = dir + "/model-00001-of-00002.safetensors";
  const std::string shard2 = dir + "/model-00002-of-00002.safetensors";
  EXPECT_EQ(ckpt.files(), (std::vector<std::string>{shard1, shard2}));
  EXPECT_EQ(ckpt.names(), (std::vector<std::string>{"blocks.0.b", "blocks.0.w", "blocks.1.w"}));
  EXPECT_EQ(ckpt.num_tensors(), 3);
  EXPECT_EQ(ckpt.metadata().at("shard"), "1");
  EXPECT_EQ(ckpt.at("blocks.0.w").file, shard1);
  EXPECT_EQ(ckpt.at("blocks.1.w").file, shard2);
  const Tensor t = ckpt.tensor("blocks.1.w");
  EXPECT_EQ(t.shape(), Shape{3});
  EXPECT_EQ(t.data<float>()[2], 21.0f);
  EXPECT_EQ(ckpt.tensor("blocks.0.b").data<float>()[1], 10.5f);
}

TEST(Safetensors, OpensDirectories) {
  // A single file.
  const std::string single = testing::make_temp_dir("st_dir_single");
  write_safetensors(single + "/weights.safetensors", {{"w", f32_tensor({2}, 0)}});
  EXPECT_EQ(Checkpoint::open(single).path(), single + "/weights.safetensors");

  // An index and its shards: the index wins over the shard files.
  const std::string sharded = testing::make_temp_dir("st_dir_sharded");
  write_sharded(sharded, "diffusion_pytorch_model");
  const Checkpoint ckpt = Checkpoint::open(sharded);
  EXPECT_EQ(ckpt.path(), sharded + "/diffusion_pytorch_model.safetensors.index.json");
  EXPECT_EQ(ckpt.num_tensors(), 3);

  // Several files: the preferred name wins.
  const std::string variants = testing::make_temp_dir("st_dir_variants");
  write_safetensors(variants + "/diffusion_pytorch_model.safetensors", {{"w", f32_tensor({2}, 0)}});
  write_safetensors(variants + "/diffusion_pytorch_model.fp16.safetensors", {{"w", f32_tensor({2}, 0)}});
  write_safetensors(variants + "/model.safetensors", {{"w", f32_tensor({2}, 0)}});
  EXPECT_EQ(Checkpoint::open(variants).path(), variants + "/diffusion_pytorch_model.safetensors");
  fs::remove(variants + "/diffusion_pytorch_model.safetensors");
  EXPECT_EQ(Checkpoint::open(variants).path(), variants + "/model.safetensors");

  // Several files and no preferred name: an error listing them.
  fs::remove(variants + "/model.safetensors");
  write_safetensors(variants + "/other.safetensors", {{"w", f32_tensor({2}, 0)}});
  std::string msg = error_of([&] { Checkpoint::open(variants); });
  EXPECT_CONTAINS(msg, variants);
  EXPECT_CONTAINS(msg, "several candidates");
  EXPECT_CONTAINS(msg, "diffusion_pytorch_model.fp16.safetensors");
  EXPECT_CONTAINS(msg, "other.safetensors");

  const std::string empty = testing::make_temp_dir("st_dir_empty");
  msg = error_of([&] { Checkpoint::open(empty); });
  EXPECT_CONTAINS(msg, empty);
  EXPECT_CONTAINS(msg, "no *.safetensors");

  msg = error_of([&] { Checkpoint::open(empty + "/absent.safetensors"); });
  EXPECT_CONTAINS(msg, empty + "/absent.safetensors");
  EXPECT_CONTAINS(msg, "no such file");
}

// ---- corruptions: each must be a fastar::Error naming the file and the problem ----------------

class SafetensorsCorrupt : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::make_temp_dir(std::string("st_corrupt_") +
                                  ::testing::UnitTest::GetInstance()->current_test_info()->name());
    path_ = dir_ + "/bad.safetensors";
  }
  // The error for a file with this header and `data_bytes` zero bytes of data.
  std::string error_for_header(const std::string& header, size_t data_bytes) {
    return open_error(path_, raw_file(header, std::string(data_bytes, '\0')));
  }
  std::string dir_, path_;
};

TEST_F(SafetensorsCorrupt, TruncatedMidData) {
  write_safetensors(path_, {{"w", f32_tensor({16}, 0)}});
  const std::string bytes = read_bytes(path_);
  const std::string msg = open_error(path_, bytes.substr(0, bytes.size() - 10));
  EXPECT_CONTAINS(msg, path_);
  EXPECT_CONTAINS(msg, "tensor 'w'");
  EXPECT_CONTAINS(msg, "run past the end of the data section");
  EXPECT_CONTAINS(msg, "truncated");
}

TEST_F(SafetensorsCorrupt, TruncatedMidHeader) {
  write_safetensors(path_, {{"w", f32_tensor({16}, 0)}});
  const std::string bytes = read_bytes(path_);
  const std::string msg = open_error(path_, bytes.substr(0, 8 + header_length(bytes) / 2));
  EXPECT_CONTAINS(msg, path_);
  EXPECT_CONTAINS(msg, "runs past the end of the file");
  EXPECT_CONTAINS(msg, "truncated");
}

TEST_F(SafetensorsCorrupt, SmallerThanEightBytes) {
  for (size_t size : {0, 1, 7}) {
    const std::string msg = open_error(path_, std::string(size, '\x01'));
    EXPECT_CONTAINS(msg, path_);
    EXPECT_CONTAINS(msg, "smaller than 8 bytes");
  }
}

TEST_F(SafetensorsCorrupt, BadJson) {
  std::string msg = error_for_header(R"({"w": {"dtype": "F32", )", 0);
  EXPECT_CONTAINS(msg, path_);
  EXPECT_CONTAINS(msg, "header is not valid JSON");
  msg = error_for_header("[1, 2]", 0);
  EXPECT_CONTAINS(msg, path_);
  EXPECT_CONTAINS(msg, "not an object");
  msg = error_for_header(R"({"w": [1, 2]})", 0);
  EXPECT_CONTAINS(msg, "tensor 'w': header entry is a JSON array");
  msg = error_for_header(R"({"w": {"dtype": "F32", "shape": [1]}})", 4);
  EXPECT_CONTAINS(msg, R"(lacks "data_offsets")");
  msg = error_for_header(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "w": 1})", 4);
  EXPECT_CONTAINS(msg, "appears twice");
  msg = error_for_header(R"({"__metadata__": {"a": 1}})", 0);
  EXPECT_CONTAINS(msg, path_);
  EXPECT_CONTAINS(msg, "\"__metadata__\" must be an object of strings");
  // Deeply nested input must not overflow the stack.
  msg = error_for_header(std::string(200000, '['), 0);
  EXPECT_CONTAINS(msg, "header is not valid JSON");
}

TEST_F(SafetensorsCorrupt, HeaderLengthPastEof) {
  std::string msg = open_error(path_, raw_file("{}", "", 1000));
  EXPECT_CONTAINS(msg, path_);
  EXPECT_CONTAINS(msg, "header length 1000 runs past the end of the file");
  msg = open_error(path_, raw_file("{}", "", uint64_t{1} << 62));
  EXPECT_CONTAINS(msg, path_);
  EXPECT_CONTAINS(msg, "larger than 100 MB");
  msg = open_error(path_, raw_file("{}", "", ~uint64_t{0}));
  EXPECT_CONTAINS(msg, "larger than 100 MB");
}

TEST_F(SafetensorsCorrupt, OffsetPastEnd) {
  const std::string msg = error_for_header(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", 8);
  EXPECT_CONTAINS(msg, path_);
  EXPECT_CONTAINS(msg, "tensor 'w': data_offsets [0, 16] run past the end of the data section (8 bytes)");
  // Offsets that would wrap around a 64-bit addition.
  const std::string huge =
      error_for_header(R"({"w": {"dtype": "U8", "shape": [2], "data_offsets": [18446744073709551615, 1]}})", 8);
  EXPECT_CONTAINS(huge, "begin > end");
}

TEST_F(SafetensorsCorrupt, ByteLengthNotMatchingShape) {
  const std::string msg = error_for_header(R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", 8);
  EXPECT_CONTAINS(msg, path_);
  EXPECT_CONTAINS(msg, "byte length 8");
  EXPECT_CONTAINS(msg, "does not match shape [3] x F32 = 12 bytes");
}

TEST_F(SafetensorsCorrupt, OverlappingRanges) {
  const std::string msg = error_for_header(
      R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
          "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
      12);
  EXPECT_CONTAINS(msg, path_);
  EXPECT_CONTAINS(msg, "tensors 'a' [0, 8) and 'b' [4, 12) overlap");
  // A range nested inside an earlier, longer one.
  const std::string nested = error_for_header(
      R"({"a": {"dtype": "U8", "shape": [10], "data_offsets": [0, 10]},
          "b": {"dtype": "U8", "shape": [2], "data_offsets": [2, 4]},
          "c": {"dtype": "U8", "shape": [2], "data_offsets": [10, 12]}})",
      12);
  EXPECT_CONTAINS(nested, "overlap");
  // Zero-byte tensors sit between tensors (here at the start, between two and at the end), as in
  // Python's safetensors; one inside another tensor's bytes is rejected like any other overlap.
  write_bytes(path_, raw_file(R"({"a": {"dtype": "U8", "shape": [10], "data_offsets": [0, 10]},
                                  "s": {"dtype": "U8", "shape": [0], "data_offsets": [0, 0]},
                                  "e": {"dtype": "F32", "shape": [0, 3], "data_offsets": [10, 10]},
                                  "b": {"dtype": "U8", "shape": [2], "data_offsets": [10, 12]},
                                  "z": {"dtype": "F32", "shape": [0], "data_offsets": [12, 12]}})",
                              std::string(12, '\0')));
  const Checkpoint ckpt = Checkpoint::open(path_);
  EXPECT_EQ(ckpt.at("e").nbytes, 0);
  EXPECT_EQ(ckpt.tensor("z").numel(), 0);
  const std::string inside = error_for_header(R"({"a": {"dtype": "U8", "shape": [10], "data_offsets": [0, 10]},
                                                  "e": {"dtype": "F32", "shape": [0, 3], "data_offsets": [5, 5]}})",
                                              10);
  EXPECT_CONTAINS(inside, path_);
  EXPECT_CONTAINS(inside, "tensors 'a' [0, 10) and 'e' [5, 5) overlap");
}

// Python's safetensors requires the tensors to fill the data section back to back; a reader that
// accepts gaps or spare bytes also accepts a header length off by one, which shifts every tensor.
TEST_F(SafetensorsCorrupt, TensorsMustCoverTheDataSectionExactly) {
  const std::string header = R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]}})";
  const std::string padded = header + std::string((8 - header.size() % 8) % 8 + 8, ' ');  // as writers pad
  const float values[3] = {1.0f, 2.0f, 3.0f};
  const std::string data(reinterpret_cast<const char*>(values), sizeof(values));
  write_bytes(path_, raw_file(padded, data));
  EXPECT_EQ(Checkpoint::open(path_).tensor("w").data<float>()[2], 3.0f);

  // The header length lowered by one: the header's last space becomes the tensors' first byte.
  std::string msg = open_error(path_, raw_file(padded, data, padded.size() - 1));
  EXPECT_CONTAINS(msg, path_);
  EXPECT_CONTAINS(msg, "1 byte after the last tensor");
  EXPECT_CONTAINS(msg, "header length");
  // Spare bytes at the end.
  msg = open_error(path_, raw_file(padded, data + std::string(4, '\0')));
  EXPECT_CONTAINS(msg, path_);
  EXPECT_CONTAINS(msg, "4 bytes after the last tensor");
  // A gap between two tensors, and one before the first.
  msg = error_for_header(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                             "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}})",
                         12);
  EXPECT_CONTAINS(msg, path_);
  EXPECT_CONTAINS(msg, "bytes [4, 8) of the data section belong to no tensor");
  msg = error_for_header(R"({"b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", 8);
  EXPECT_CONTAINS(msg, "bytes [0, 4) of the data section belong to no tensor");
  // No tensors but data bytes.
  msg = error_for_header("{}", 8);
  EXPECT_CONTAINS(msg, "8 bytes after the last tensor");
}

TEST_F(SafetensorsCorrupt, HeaderIsJsonPaddedWithSpacesOnly) {
  const std::string entry = R"({"w": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}})";
  // A NUL byte ended the JSON parse and the rest of the header was ignored.
  std::string msg = open_error(path_, raw_file(entry + std::string(1, '\0') + "junk", "x"));
  EXPECT_CONTAINS(msg, path_);
  EXPECT_CONTAINS(msg, "NUL byte at header offset " + std::to_string(entry.size()));
  msg = open_error(path_, raw_file(entry + std::string(3, '\0'), "x"));
  EXPECT_CONTAINS(msg, "NUL byte");
  // Padding other than spaces after the object, or anything before it.
  msg = open_error(path_, raw_file(entry + "\n", "x"));
  EXPECT_CONTAINS(msg, path_);
  EXPECT_CONTAINS(msg, "padded with spaces");
  msg = open_error(path_, raw_file(" " + entry, "x"));
  EXPECT_CONTAINS(msg, "must start with '{'");
  // Spaces are fine.
  write_bytes(path_, raw_file(entry + "       ", "x"));
  EXPECT_EQ(Checkpoint::open(path_).tensor("w").data<uint8_t>()[0], 'x');
}

TEST_F(SafetensorsCorrupt, UnknownDtype) {
  const std::string msg = error_for_header(R"({"w": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}})", 4);
  EXPECT_CONTAINS(msg, path_);
  EXPECT_CONTAINS(msg, "tensor 'w': unknown dtype 'F8_E4M3'");
  EXPECT_CONTAINS(msg, "BF16");
  const std::string not_string = error_for_header(R"({"w": {"dtype": 7, "shape": [4], "data_offsets": [0, 4]}})", 4);
  EXPECT_CONTAINS(not_string, "\"dtype\" must be a string");
}

TEST_F(SafetensorsCorrupt, BadShape) {
  std::string msg = error_for_header(R"({"w": {"dtype": "F32", "shape": [2, -1], "data_offsets": [0, 0]}})", 0);
  EXPECT_CONTAINS(msg, path_);
  EXPECT_CONTAINS(msg, "tensor 'w': negative extent -1");
  msg = error_for_header(R"({"w": {"dtype": "F32", "shape": [2.5], "data_offsets": [0, 0]}})", 0);
  EXPECT_CONTAINS(msg, "\"shape\" must be a list of non-negative integers");
  msg = error_for_header(R"({"w": {"dtype": "F32", "shape": 4, "data_offsets": [0, 16]}})", 16);
  EXPECT_CONTAINS(msg, "\"shape\" must be a list of non-negative integers");
  msg = error_for_header(R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}})", 0);
  EXPECT_CONTAINS(msg, path_);
  EXPECT_CONTAINS(msg, "overflows int64");
  // Zero elements but with extents whose product would overflow: still rejected (strides would).
  msg = error_for_header(R"({"w": {"dtype": "F32", "shape": [0, 4294967296, 4294967296], "data_offsets": [0, 0]}})",
                         0);
  EXPECT_CONTAINS(msg, "overflows int64");
  msg = error_for_header(R"({"w": {"dtype": "F64", "shape": [2305843009213693952], "data_offsets": [0, 0]}})", 0);
  EXPECT_CONTAINS(msg, "overflows int64 bytes");
  msg = error_for_header(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, -4]}})", 4);
  EXPECT_CONTAINS(msg, "\"data_offsets\" must be two non-negative integers");
  msg = error_for_header(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}})", 8);
  EXPECT_CONTAINS(msg, "begin > end");
}

TEST_F(SafetensorsCorrupt, MissingShard) {
  write_sharded(dir_, "model");
  const std::string missing = dir_ + "/model-00002-of-00002.safetensors";
  fs::remove(missing);
  const std::string index = dir_ + "/model.safetensors.index.json";
  const std::string msg = error_of([&] { Checkpoint::open(index); });
  EXPECT_CONTAINS(msg, index);
  EXPECT_CONTAINS(msg, "shard " + missing);
  EXPECT_CONTAINS(msg, "does not exist");
}

TEST_F(SafetensorsCorrupt, BadIndex) {
  const std::string index = dir_ + "/model.safetensors.index.json";
  write_sharded(dir_, "model");

  write_bytes(index, R"({"weight_map": {"a": )");
  std::string msg = error_of([&] { Checkpoint::open(index); });
  EXPECT_CONTAINS(msg, index);
  EXPECT_CONTAINS(msg, "index is not valid JSON");

  write_bytes(index, R"({"metadata": {}})");
  msg = error_of([&] { Checkpoint::open(index); });
  EXPECT_CONTAINS(msg, index);
  EXPECT_CONTAINS(msg, "no \"weight_map\"");

  // The weight_map names a tensor its shard does not hold.
  write_bytes(index, R"({"weight_map": {"blocks.0.w": "model-00001-of-00002.safetensors",
                                         "ghost": "model-00002-of-00002.safetensors"}})");
  msg = error_of([&] { Checkpoint::open(index); });
  EXPECT_CONTAINS(msg, index);
  EXPECT_CONTAINS(msg, "tensor 'ghost' in " + dir_ + "/model-00002-of-00002.safetensors");
  EXPECT_CONTAINS(msg, "does not contain it");

  // The same tensor in two shards.
  write_safetensors(dir_ + "/model-00002-of-00002.safetensors", {{"blocks.0.w", f32_tensor({1}, 0)}});
  write_bytes(index, R"({"weight_map": {"blocks.0.w": "model-00001-of-00002.safetensors",
                                         "x": "model-00002-of-00002.safetensors"}})");
  msg = error_of([&] { Checkpoint::open(index); });
  EXPECT_CONTAINS(msg, index);
  EXPECT_CONTAINS(msg, "tensor 'blocks.0.w' appears in both");
}

TEST_F(SafetensorsCorrupt, MissingTensorViaAt) {
  write_safetensors(path_, {{"blocks.0.attn.q.weight", f32_tensor({2}, 0)}, {"head.bias", f32_tensor({1}, 0)}});
  const Checkpoint ckpt = Checkpoint::open(path_);
  std::string msg = error_of([&] { ckpt.at("blocks.0.attn.k.weight"); });
  EXPECT_CONTAINS(msg, path_ + ": no tensor named 'blocks.0.attn.k.weight'");
  EXPECT_CONTAINS(msg, "closest of its 2 tensors: 'blocks.0.attn.q.weight'");
  msg = error_of([&] { ckpt.tensor("nope"); });
  EXPECT_CONTAINS(msg, "no tensor named 'nope'");
}

TEST(Safetensors, UnalignedDataIsCopied) {
  const std::string dir = testing::make_temp_dir("st_unaligned");
  const std::string path = dir + "/odd.safetensors";
  // Header of odd length and a one-byte tensor first: "w" sits at an odd address.
  std::string data(1, '\x05');
  const float values[2] = {1.5f, -2.0f};
  data.append(reinterpret_cast<const char*>(values), sizeof(values));
  write_bytes(path, raw_file(R"({"b": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},
                                 "w": {"dtype": "F32", "shape": [2], "data_offsets": [1, 9]}})",
                             data));
  const Checkpoint ckpt = Checkpoint::open(path);
  const Tensor w = ckpt.tensor("w");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(w.raw_data()) % 4, 0u);
  EXPECT_EQ(w.data<float>()[0], 1.5f);
  EXPECT_EQ(w.data<float>()[1], -2.0f);
  EXPECT_EQ(ckpt.tensor("b").data<uint8_t>()[0], 5);
}

// ---- fuzz: mutated files either open or throw fastar::Error; nothing else ----------------------

TEST(Safetensors, FuzzMutationsNeverCrash) {
  const std::string dir = testing::make_temp_dir("st_fuzz");
  const std::string valid = dir + "/valid.safetensors";
  Tensor bf16 = Tensor::zeros({3}, DType::BF16);
  write_safetensors(valid, {{"a", f32_tensor({2}, 1)}, {"bb", bf16}, {"e", Tensor::zeros({0}, DType::I32)}},
                    {{"k", "v"}});
  const std::string original = read_bytes(valid);
  ASSERT_LT(original.size(), 400u);

  const std::string path = dir + "/mutant.safetensors";
  int opened = 0, rejected = 0;
  auto attempt = [&](const std::string& bytes) {
    write_bytes(path, bytes);
    try {
      const Checkpoint ckpt = Checkpoint::open(path);
      // Touch every byte the checkpoint hands out.
      uint64_t sum = 0;
      for (const std::string& name : ckpt.names()) {
        const TensorEntry& e = ckpt.at(name);
        for (int64_t i = 0; i < e.nbytes; ++i) sum += static_cast<const unsigned char*>(e.data)[i];
        const Tensor t = ckpt.tensor(name);
        EXPECT_EQ(t.nbytes(), e.nbytes);
      }
      (void)sum;
      ++opened;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      ++rejected;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "non-fastar exception: " << e.what();
    }
  };

  std::mt19937_64 rng(20240607);
  for (size_t pos = 0; pos < original.size(); ++pos) {
    for (const char replacement : {static_cast<char>(original[pos] ^ 0xff), '9', '-', '"', '{', '\0',
                                   static_cast<char>(rng() & 0xff)}) {
      std::string mutant = original;
      mutant[pos] = replacement;
      attempt(mutant);
    }
  }
  for (int i = 0; i < 200; ++i) attempt(original.substr(0, rng() % original.size()));
  for (int i = 0; i < 200; ++i) {
    std::string mutant = original;
    const int flips = 1 + static_cast<int>(rng() % 8);
    for (int f = 0; f < flips; ++f) mutant[rng() % mutant.size()] = static_cast<char>(rng() & 0xff);
    attempt(mutant);
  }
  EXPECT_GT(opened, 0);
  EXPECT_GT(rejected, 0);
}

}  // namespace
}  // namespace fastar
