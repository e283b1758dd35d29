#include "fastar/model/umt5_tokenizer.h"

#include <sentencepiece_processor.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "fastar/core/error.h"
#include "fastar/model/prompt_clean.h"

namespace fastar {

namespace fs = std::filesystem;

namespace {

// Parses a tokenizer JSON file, dropping the big members fastar does not read (a real umT5
// tokenizer.json is 16.8 MB, mostly "vocab" and "precompiled_charsmap").
nlohmann::json read_tokenizer_json(const fs::path& path) {
  std::ifstream in(path);
  FASTAR_CHECK(in.good(), path.string() << ": cannot open");
  try {
    return nlohmann::json::parse(in, [](int, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
      return !(event == nlohmann::json::parse_event_t::key && parsed.is_string() &&
               (parsed == "vocab" || parsed == "precompiled_charsmap" || parsed == "merges"));
    });
  } catch (const nlohmann::json::exception& e) {
    FASTAR_FAIL(path.string() << ": not valid JSON (" << e.what() << "); re-download the tokenizer files");
  }
}

int32_t json_id(const nlohmann::json& value, const std::string& source) {
  FASTAR_CHECK(value.is_number_integer() && value.get<int64_t>() >= 0 && value.get<int64_t>() < (int64_t{1} << 31),
               source << ": token id " << value.dump() << " is not a non-negative integer");
  return static_cast<int32_t>(value.get<int64_t>());
}

}  // namespace

Umt5Tokenizer::Umt5Tokenizer(Umt5Tokenizer&&) noexcept = default;
Umt5Tokenizer& Umt5Tokenizer::operator=(Umt5Tokenizer&&) noexcept = default;
Umt5Tokenizer::~Umt5Tokenizer() = default;

Umt5Tokenizer Umt5Tokenizer::load(const std::string& path) {
  fs::path folder, model;
  if (fs::is_directory(path)) {
    folder = path;
    model = folder / "spiece.model";
    FASTAR_CHECK(fs::exists(model), path << ": no spiece.model in this folder; point at the umT5 tokenizer folder "
                                            "(diffusers `tokenizer/`, Wan `google/umt5-xxl/`) or at a SentencePiece .model file");
  } else {
    FASTAR_CHECK(fs::exists(path), path << ": no such tokenizer file or folder");
    model = path;
    folder = model.parent_path();
  }
  Umt5Tokenizer t;
  t.model_path_ = model.string();
  t.processor_ = std::make_unique<sentencepiece::SentencePieceProcessor>();
  const auto status = t.processor_->Load(t.model_path_);
  FASTAR_CHECK(status.ok(), t.model_path_ << ": not a SentencePiece model (" << status.ToString()
                                          << "); use the umT5 spiece.model");
  const sentencepiece::SentencePieceProcessor& sp = *t.processor_;
  t.eos_id_ = sp.eos_id();
  t.pad_id_ = sp.pad_id();
  t.unk_id_ = sp.unk_id();
  FASTAR_CHECK(t.eos_id_ >= 0 && t.pad_id_ >= 0 && t.unk_id_ >= 0,
               t.model_path_ << ": the model has no </s>, <pad> or <unk> piece (eos " << t.eos_id_ << ", pad "
                             << t.pad_id_ << ", unk " << t.unk_id_ << "); umT5's has all three");
  const bool sp_byte_fallback = sp.IsByte(sp.PieceToId("<0x00>"));

  // HF's view: tokenizer.json (fast), else tokenizer_config.json (slow, converted by AutoTokenizer).
  const fs::path tokenizer_json = folder / "tokenizer.json";
  const fs::path tokenizer_config = folder / "tokenizer_config.json";
  bool hf_byte_fallback = false;  // what HF's T5 converter produces (pipeline-spec.md §5.3)
  bool have_added = false;
  if (fs::exists(tokenizer_json)) {
    const nlohmann::json j = read_tokenizer_json(tokenizer_json);
    if (j.contains("model") && j["model"].is_object() && j["model"].contains("byte_fallback"))
      hf_byte_fallback = j["model"]["byte_fallback"].get<bool>();
    if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
      for (const auto& token : j["added_tokens"])
        t.added_tokens_.push_back({token.at("content").get<std::string>(), json_id(token.at("id"), tokenizer_json.string())});
      have_added = true;
    }
  }
  int64_t extra_ids = 0;
  if (!have_added && fs::exists(tokenizer_config)) {
    const nlohmann::json j = read_tokenizer_json(tokenizer_config);
    if (j.contains("added_tokens_decoder") && j["added_tokens_decoder"].is_object()) {
      for (const auto& [key, token] : j["added_tokens_decoder"].items()) {
        int32_t id = 0;
        try {
          id = json_id(nlohmann::json(std::stoll(key)), tokenizer_config.string());
        } catch (const std::logic_error&) {
          FASTAR_FAIL(tokenizer_config.string() << ": added_tokens_decoder key '" << key << "' is not a token id");
        }
        t.added_tokens_.push_back({token.at("content").get<std::string>(), id});
      }
      have_added = true;
    } else if (j.contains("extra_ids") && j["extra_ids"].is_number_integer()) {
      extra_ids = j["extra_ids"].get<int64_t>();
    }
  }
  if (!have_added) {
    // The slow T5 tokenizer's rule: control and unknown pieces, then <extra_id_N> counted down from the top.
    for (int id = 0; id < sp.GetPieceSize(); ++id)
      if (sp.IsControl(id) || sp.IsUnknown(id)) t.added_tokens_.push_back({sp.IdToPiece(id), id});
    for (int64_t n = 0; n < extra_ids; ++n)
      t.added_tokens_.push_back({"<extra_id_" + std::to_string(n) + ">",
                                 static_cast<int32_t>(sp.GetPieceSize() + extra_ids - 1 - n)});
  }
  t.added_tokens_.erase(std::remove_if(t.added_tokens_.begin(), t.added_tokens_.end(),
                                       [](const Umt5AddedToken& a) { return a.content.empty(); }),
                        t.added_tokens_.end());
  std::stable_sort(t.added_tokens_.begin(), t.added_tokens_.end(),
                   [](const Umt5AddedToken& a, const Umt5AddedToken& b) { return a.content.size() > b.content.size(); });
  for (const Umt5AddedToken& a : t.added_tokens_) t.starts_added_token_[static_cast<unsigned char>(a.content[0])] = true;
  t.merges_byte_runs_ = sp_byte_fallback && !hf_byte_fallback;
  t.id_limit_ = sp.GetPieceSize();
  for (const Umt5AddedToken& a : t.added_tokens_) t.id_limit_ = std::max<int64_t>(t.id_limit_, int64_t{a.id} + 1);
  return t;
}

void Umt5Tokenizer::append_segment(const std::string& text, std::vector<int32_t>& ids) const {
  if (text.empty()) return;
  std::vector<int> pieces;
  const auto status = processor_->Encode(text, &pieces);
  FASTAR_CHECK(status.ok(), model_path_ << ": SentencePiece failed to encode the prompt (" << status.ToString() << ")");
  bool in_byte_run = false;
  for (const int id : pieces) {
    if (merges_byte_runs_ && processor_->IsByte(id)) {
      if (!in_byte_run) ids.push_back(unk_id_);
      in_byte_run = true;
    } else {
      ids.push_back(id);
      in_byte_run = false;
    }
  }
}

Umt5Tokens Umt5Tokenizer::encode_clean(const std::string& text, int64_t text_len) const {
  FASTAR_CHECK(text_len >= 1, "text_len " << text_len << " must be at least 1 (room for </s>)");
  std::vector<int32_t> ids;
  size_t segment_start = 0, pos = 0;
  while (pos < text.size()) {
    if (!starts_added_token_[static_cast<unsigned char>(text[pos])]) {
      ++pos;
      continue;
    }
    const Umt5AddedToken* match = nullptr;
    for (const Umt5AddedToken& a : added_tokens_) {  // longest first: the first match is the longest
      if (text.compare(pos, a.content.size(), a.content) == 0) {
        match = &a;
        break;
      }
    }
    if (!match) {
      ++pos;
      continue;
    }
    append_segment(text.substr(segment_start, pos - segment_start), ids);
    ids.push_back(match->id);
    pos += match->content.size();
    segment_start = pos;
  }
  append_segment(text.substr(segment_start), ids);

  Umt5Tokens out;
  if (static_cast<int64_t>(ids.size()) > text_len - 1) ids.resize(static_cast<size_t>(text_len - 1));
  ids.push_back(eos_id_);
  out.length = static_cast<int64_t>(ids.size());
  ids.resize(static_cast<size_t>(text_len), pad_id_);
  out.ids = std::move(ids);
  return out;
}

Umt5Tokens Umt5Tokenizer::encode(const std::string& prompt, int64_t text_len) const {
  return encode_clean(clean_prompt_wan(prompt), text_len);
}

}  // namespace fastar
