#include "fastar/core/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <string_view>

#include <nlohmann/json.hpp>

#include "fastar/core/error.h"

namespace fastar {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Headers (and index files) above this are rejected as corrupt before anything is parsed.
constexpr uint64_t kMaxHeaderBytes = 100ull * 1000 * 1000;

std::string errno_text(int err) { return std::strerror(err); }

// A JSON value for an error message, cut short so hostile input cannot produce a huge message.
std::string short_dump(const json& value) {
  std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > 80) text = text.substr(0, 77) + "...";
  return text;
}

// A tensor name for an error message, likewise cut short.
std::string quote_name(std::string_view name) {
  std::string text(name.substr(0, 120));
  if (name.size() > 120) text += "...";
  return "'" + text + "'";
}

std::string known_dtypes() {
  std::string out;
  for (DType d : {DType::F32, DType::BF16, DType::F16, DType::F64, DType::I64, DType::I32, DType::I16, DType::I8,
                  DType::U8, DType::BOOL}) {
    if (!out.empty()) out += ", ";
    out += dtype_name(d);
  }
  return out;
}

// Maps `path` read-only and returns a Storage over the whole file; the mapping is unmapped when
// the last Storage/Tensor referring to it goes away. The descriptor is closed before returning.
std::shared_ptr<Storage> map_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  FASTAR_CHECK(fd >= 0, path << ": cannot open: " << errno_text(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    FASTAR_FAIL(path << ": cannot stat: " << errno_text(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    FASTAR_FAIL(path << ": not a regular file; pass a .safetensors file, an index json or a checkpoint folder");
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    FASTAR_FAIL(path << ": file is only " << size
                     << " bytes, smaller than 8 bytes (the safetensors header length); the file is truncated or "
                        "not a safetensors file, re-download or re-export it");
  }
  void* addr = ::mmap(nullptr, static_cast<size_t>(size), PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_errno = errno;
  ::close(fd);
  FASTAR_CHECK(addr != MAP_FAILED, path << ": cannot memory-map " << size << " bytes: " << errno_text(map_errno));
  const size_t length = static_cast<size_t>(size);
  std::shared_ptr<void> mapping(addr, [length](void* p) { ::munmap(p, length); });
  return Storage::borrow(addr, static_cast<int64_t>(size), std::move(mapping));
}

struct ParsedEntry {
  TensorEntry entry;
  int64_t offset = 0;  // from the start of the mapping
  uint64_t begin = 0;  // data_offsets, relative to the data section
  uint64_t end = 0;
};

struct ParsedFile {
  std::shared_ptr<Storage> storage;
  std::map<std::string, std::string> metadata;
  std::vector<ParsedEntry> entries;
};

// Reads one of data_offsets; nlohmann stores non-negative integers as unsigned.
bool offset_value(const json& value, uint64_t* out) {
  if (!value.is_number_unsigned()) return false;
  *out = value.get<uint64_t>();
  return true;
}

ParsedEntry parse_entry(const std::string& path, const std::string& name, const json& value,
                        const unsigned char* data_section, uint64_t data_size, int64_t data_start) {
  const std::string where = path + ": tensor " + quote_name(name);
  FASTAR_CHECK(value.is_object(), where << ": header entry is a JSON " << value.type_name()
                                        << ", not an object with \"dtype\", \"shape\" and \"data_offsets\"");
  for (const char* key : {"dtype", "shape", "data_offsets"})
    FASTAR_CHECK(value.contains(key), where << ": header entry lacks \"" << key << "\"; the file is corrupt");

  ParsedEntry parsed;
  TensorEntry& entry = parsed.entry;
  entry.name = name;
  entry.file = path;

  const json& dtype = value["dtype"];
  FASTAR_CHECK(dtype.is_string(), where << ": \"dtype\" must be a string, got " << short_dump(dtype));
  const std::string& dtype_text = dtype.get_ref<const std::string&>();
  FASTAR_CHECK(dtype_from_name(dtype_text, &entry.dtype),
               where << ": unknown dtype " << quote_name(dtype_text) << "; fastar reads " << known_dtypes()
                     << " (convert the checkpoint to one of these)");

  const json& shape = value["shape"];
  FASTAR_CHECK(shape.is_array(), where << ": \"shape\" must be a list of non-negative integers, got "
                                       << short_dump(shape));
  int64_t numel_nonzero = 1;  // product of the non-zero extents: bounds every stride
  bool has_zero = false;
  for (const json& extent : shape) {
    FASTAR_CHECK(extent.is_number_integer(),
                 where << ": \"shape\" must be a list of non-negative integers, got " << short_dump(shape));
    if (extent.is_number_unsigned()) {
      const uint64_t v = extent.get<uint64_t>();
      FASTAR_CHECK(v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()),
                   where << ": extent " << v << " in shape " << short_dump(shape) << " overflows int64");
      entry.shape.push_back(static_cast<int64_t>(v));
    } else {
      const int64_t v = extent.get<int64_t>();
      FASTAR_CHECK(v >= 0, where << ": negative extent " << v << " in shape " << short_dump(shape)
                                 << "; shapes must be non-negative integers");
      entry.shape.push_back(v);
    }
    const int64_t v = entry.shape.back();
    if (v == 0) {
      has_zero = true;
    } else {
      FASTAR_CHECK(!__builtin_mul_overflow(numel_nonzero, v, &numel_nonzero),
                   where << ": the element count of shape " << short_dump(shape) << " overflows int64");
    }
  }
  const int64_t numel = has_zero ? 0 : numel_nonzero;
  int64_t expected_bytes = 0;
  FASTAR_CHECK(!__builtin_mul_overflow(numel, dtype_size(entry.dtype), &expected_bytes),
               where << ": shape " << short_dump(shape) << " x " << dtype_text << " overflows int64 bytes");

  const json& offsets = value["data_offsets"];
  FASTAR_CHECK(offsets.is_array() && offsets.size() == 2 && offset_value(offsets[0], &parsed.begin) &&
                   offset_value(offsets[1], &parsed.end),
               where << ": \"data_offsets\" must be two non-negative integers [begin, end], got "
                     << short_dump(offsets));
  FASTAR_CHECK(parsed.begin <= parsed.end, where << ": data_offsets [" << parsed.begin << ", " << parsed.end
                                                 << "] have begin > end; the file is corrupt");
  FASTAR_CHECK(parsed.end <= data_size,
               where << ": data_offsets [" << parsed.begin << ", " << parsed.end
                     << "] run past the end of the data section (" << data_size
                     << " bytes); the file is truncated or corrupt, re-download or re-export it");
  const uint64_t length = parsed.end - parsed.begin;
  FASTAR_CHECK(length == static_cast<uint64_t>(expected_bytes),
               where << ": byte length " << length << " (data_offsets [" << parsed.begin << ", " << parsed.end
                     << "]) does not match shape " << shape_to_string(entry.shape) << " x " << dtype_text << " = "
                     << expected_bytes << " bytes; the file is corrupt");

  entry.data = data_section + parsed.begin;
  entry.nbytes = expected_bytes;
  parsed.offset = data_start + static_cast<int64_t>(parsed.begin);
  return parsed;
}

// Maps and fully validates one safetensors file.
ParsedFile parse_file(const std::string& path) {
  ParsedFile file;
  file.storage = map_file(path);
  const auto* base = static_cast<const unsigned char*>(file.storage->data());
  const uint64_t size = static_cast<uint64_t>(file.storage->nbytes());  // >= 8, checked by map_file

  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | base[i];
  FASTAR_CHECK(header_len <= kMaxHeaderBytes,
               path << ": header length " << header_len << " is larger than 100 MB; the file is corrupt or "
                                                           "not a safetensors file");
  FASTAR_CHECK(header_len <= size - 8,
               path << ": header length " << header_len << " runs past the end of the file (" << size
                    << " bytes); the file is truncated, re-download or re-export it");

  const char* header = reinterpret_cast<const char*>(base + 8);
  const uint64_t data_start = 8 + header_len;
  const uint64_t data_size = size - data_start;

  // The header is JSON text padded at the end with spaces (the safetensors format). A NUL byte would
  // end the JSON parse early and leave whatever follows it unread, so none may appear.
  if (const void* nul = std::memchr(header, '\0', header_len)) {
    FASTAR_FAIL(path << ": NUL byte at header offset " << (static_cast<const char*>(nul) - header)
                     << "; a safetensors header is JSON text padded with spaces, so the file is corrupt or not a "
                        "safetensors file: re-download or re-export it");
  }
  uint64_t json_len = header_len;
  while (json_len > 0 && header[json_len - 1] == ' ') --json_len;

  // Duplicate top-level keys would otherwise silently overwrite one another.
  std::set<std::string> seen;
  json::parser_callback_t on_event = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth == 1 && event == json::parse_event_t::key) {
      const std::string& key = parsed.get_ref<const std::string&>();
      FASTAR_CHECK(seen.insert(key).second,
                   path << ": tensor " << quote_name(key) << " appears twice in the header; the file is corrupt");
    }
    return true;
  };
  json root;
  try {
    root = json::parse(header, header + json_len, on_event);
  } catch (const json::exception& e) {
    FASTAR_FAIL(path << ": header is not valid JSON (" << e.what()
                     << "); the file is corrupt or not a safetensors file");
  }
  FASTAR_CHECK(root.is_object(), path << ": header is a JSON " << root.type_name()
                                      << ", not an object; the file is corrupt or not a safetensors file");
  // The parse allows JSON whitespace around the object; the format allows only trailing spaces.
  FASTAR_CHECK(header[0] == '{', path << ": header must start with '{' (a JSON object), but it starts with byte "
                                      << static_cast<int>(static_cast<unsigned char>(header[0]))
                                      << "; the file is corrupt or was written by a non-conforming tool, re-export it");
  FASTAR_CHECK(header[json_len - 1] == '}',
               path << ": header must be a JSON object padded with spaces only, but byte "
                    << static_cast<int>(static_cast<unsigned char>(header[json_len - 1]))
                    << " follows the object; the file is corrupt or was written by a non-conforming tool, re-export it");

  for (const auto& [key, value] : root.items()) {
    if (key == "__metadata__") {
      FASTAR_CHECK(value.is_object(), path << ": \"__metadata__\" must be an object of strings, got "
                                           << short_dump(value));
      for (const auto& [meta_key, meta_value] : value.items()) {
        FASTAR_CHECK(meta_value.is_string(), path << ": \"__metadata__\" must be an object of strings, but "
                                                  << quote_name(meta_key) << " is " << short_dump(meta_value));
        file.metadata[meta_key] = meta_value.get<std::string>();
      }
      continue;
    }
    file.entries.push_back(
        parse_entry(path, key, value, base + data_start, data_size, static_cast<int64_t>(data_start)));
  }

  // The tensors must fill the data section back to back, as Python's safetensors requires: sorted
  // by (begin, end), each one begins where the previous one ended and the last one ends where the
  // file ends. Gaps or spare bytes would also let a wrong header length through (it shifts every
  // tensor). Zero-byte tensors sit between others, never inside one.
  std::vector<const ParsedEntry*> ranges;
  ranges.reserve(file.entries.size());
  for (const ParsedEntry& e : file.entries) ranges.push_back(&e);
  std::sort(ranges.begin(), ranges.end(), [](const ParsedEntry* a, const ParsedEntry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t covered = 0;                 // bytes [0, covered) belong to the tensors seen so far
  const ParsedEntry* previous = nullptr;  // the tensor that ends at `covered`
  for (const ParsedEntry* e : ranges) {
    if (e->begin < covered) {
      FASTAR_FAIL(path << ": tensors " << quote_name(previous->entry.name) << " [" << previous->begin << ", "
                       << previous->end << ") and " << quote_name(e->entry.name) << " [" << e->begin << ", " << e->end
                       << ") overlap in the data section; the file is corrupt, re-download or re-export it");
    }
    FASTAR_CHECK(e->begin == covered, path << ": bytes [" << covered << ", " << e->begin
                                           << ") of the data section belong to no tensor (a gap before tensor "
                                           << quote_name(e->entry.name)
                                           << "); safetensors stores tensors back to back, so the file is corrupt: "
                                              "re-download or re-export it");
    covered = e->end;
    previous = e;
  }
  if (covered != data_size) {
    const uint64_t spare = data_size - covered;
    FASTAR_FAIL(path << ": the data section has " << spare << (spare == 1 ? " byte" : " bytes")
                     << " after the last tensor (the tensors end at byte " << covered << " of " << data_size
                     << "); the header length or the data_offsets are wrong, so the file is corrupt: re-download or "
                        "re-export it");
  }
  return file;
}

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

// Picks the checkpoint file inside a directory (see Checkpoint::open).
std::string resolve_directory(const std::string& dir) {
  std::vector<std::string> indexes, singles;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code type_ec;
    if (!it->is_regular_file(type_ec)) continue;
    const std::string name = it->path().filename().string();
    if (ends_with(name, ".safetensors.index.json"))
      indexes.push_back(name);
    else if (ends_with(name, ".safetensors"))
      singles.push_back(name);
  }
  FASTAR_CHECK(!ec, dir << ": cannot list the directory: " << ec.message());
  std::sort(indexes.begin(), indexes.end());
  std::sort(singles.begin(), singles.end());
  auto join = [&](const std::string& name) { return (fs::path(dir) / name).string(); };

  if (indexes.size() == 1) return join(indexes[0]);
  if (indexes.empty() && singles.size() == 1) return join(singles[0]);
  const std::vector<std::string>& candidates = indexes.empty() ? singles : indexes;
  for (const char* preferred : {"diffusion_pytorch_model.safetensors.index.json", "diffusion_pytorch_model.safetensors",
                                "model.safetensors.index.json", "model.safetensors"}) {
    if (std::find(candidates.begin(), candidates.end(), preferred) != candidates.end()) return join(preferred);
  }
  FASTAR_CHECK(!candidates.empty(), dir << ": no *.safetensors or *.safetensors.index.json file in this directory; "
                                           "pass the checkpoint's folder or file");
  std::ostringstream message;
  message << dir << ": cannot choose a checkpoint among several candidates (";
  for (size_t i = 0; i < candidates.size(); ++i) message << (i ? ", " : "") << candidates[i];
  message << ")" << (indexes.empty() ? " and no *.safetensors.index.json ties them together" : "")
          << "; pass the file to use";
  throw Error(message.str());
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

}  // namespace

Checkpoint Checkpoint::open(const std::string& path) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  FASTAR_CHECK(!ec && fs::exists(status), path << ": no such file or directory; pass a .safetensors file, a "
                                                  "*.safetensors.index.json or a checkpoint folder");
  std::string resolved = fs::is_directory(status) ? resolve_directory(path) : path;

  Checkpoint ckpt;
  ckpt.path_ = resolved;
  auto add_file = [&](const std::string& file_path, ParsedFile parsed) {
    const size_t index = ckpt.files_.size();
    ckpt.files_.push_back(file_path);
    ckpt.storages_.push_back(parsed.storage);
    for (ParsedEntry& e : parsed.entries) {
      auto found = ckpt.entries_.find(e.entry.name);
      FASTAR_CHECK(found == ckpt.entries_.end(),
                   resolved << ": tensor " << quote_name(e.entry.name) << " appears in both " << found->second.entry.file
                            << " and " << file_path << "; the shards do not belong to one checkpoint");
      Entry entry;
      entry.entry = std::move(e.entry);
      entry.file_index = index;
      entry.offset = e.offset;
      const std::string name = entry.entry.name;
      ckpt.entries_.emplace(name, std::move(entry));
    }
    if (index == 0) ckpt.metadata_ = std::move(parsed.metadata);
  };

  if (!ends_with(resolved, ".json")) {
    add_file(resolved, parse_file(resolved));
    return ckpt;
  }

  // A sharded checkpoint: {"metadata": {...}, "weight_map": {tensor name: shard file}}.
  std::string text;
  {
    std::ifstream in(resolved, std::ios::binary);
    FASTAR_CHECK(in, resolved << ": cannot open: " << errno_text(errno));
    in.seekg(0, std::ios::end);
    const std::streamoff size = in.tellg();
    FASTAR_CHECK(size >= 0 && static_cast<uint64_t>(size) <= kMaxHeaderBytes,
                 resolved << ": index file is larger than 100 MB (or unreadable); it is not a safetensors index");
    in.seekg(0, std::ios::beg);
    text.resize(static_cast<size_t>(size));
    in.read(text.data(), size);
    FASTAR_CHECK(in.gcount() == size, resolved << ": cannot read the index file");
  }
  json index;
  try {
    index = json::parse(text);
  } catch (const json::exception& e) {
    FASTAR_FAIL(resolved << ": index is not valid JSON (" << e.what() << "); re-download the checkpoint's index");
  }
  FASTAR_CHECK(index.is_object(), resolved << ": index is a JSON " << index.type_name() << ", not an object");
  FASTAR_CHECK(index.contains("weight_map"),
               resolved << ": index has no \"weight_map\"; a sharded checkpoint's index maps tensor names to shard files");
  const json& weight_map = index["weight_map"];
  FASTAR_CHECK(weight_map.is_object(),
               resolved << ": \"weight_map\" must be an object {tensor name: shard file}, got " << short_dump(weight_map));

  const fs::path dir = fs::path(resolved).parent_path();
  std::map<std::string, std::string> shard_paths;  // shard name -> path, sorted by name
  for (const auto& [name, shard] : weight_map.items()) {
    FASTAR_CHECK(shard.is_string() && !shard.get_ref<const std::string&>().empty(),
                 resolved << ": weight_map entry for tensor " << quote_name(name) << " must be a shard file name, got "
                          << short_dump(shard));
    const std::string& shard_name = shard.get_ref<const std::string&>();
    if (shard_paths.count(shard_name)) continue;
    const std::string shard_path = (dir / shard_name).string();
    std::error_code shard_ec;
    FASTAR_CHECK(fs::is_regular_file(shard_path, shard_ec),
                 resolved << ": shard " << shard_path << " (holding tensor " << quote_name(name)
                          << ") does not exist; download all shards of the checkpoint");
    shard_paths.emplace(shard_name, shard_path);
  }
  for (const auto& [shard_name, shard_path] : shard_paths) add_file(shard_path, parse_file(shard_path));

  for (const auto& [name, shard] : weight_map.items()) {
    const std::string& shard_path = shard_paths.at(shard.get_ref<const std::string&>());
    auto found = ckpt.entries_.find(name);
    FASTAR_CHECK(found != ckpt.entries_.end(),
                 resolved << ": weight_map places tensor " << quote_name(name) << " in " << shard_path
                          << ", but that shard does not contain it; the index and shards are from different "
                             "versions, re-download the checkpoint");
    FASTAR_CHECK(found->second.entry.file == shard_path,
                 resolved << ": weight_map places tensor " << quote_name(name) << " in " << shard_path
                          << ", but it is in " << found->second.entry.file
                          << "; the index and shards are from different versions, re-download the checkpoint");
  }
  return ckpt;
}

const TensorEntry* Checkpoint::find(const std::string& name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second.entry;
}

const TensorEntry& Checkpoint::at(const std::string& name) const {
  if (const TensorEntry* entry = find(name)) return *entry;
  std::ostringstream hint;
  if (entries_.empty()) {
    hint << "the checkpoint holds no tensors";
  } else {
    std::vector<std::pair<size_t, const std::string*>> scored;
    for (const auto& [other, entry] : entries_) scored.emplace_back(edit_distance(name, other), &other);
    const size_t shown = std::min<size_t>(3, scored.size());
    std::partial_sort(scored.begin(), scored.begin() + static_cast<std::ptrdiff_t>(shown), scored.end());
    hint << "closest of its " << entries_.size() << " tensors: ";
    for (size_t i = 0; i < shown; ++i) hint << (i ? ", " : "") << quote_name(*scored[i].second);
    hint << "; is this the checkpoint for the configured model?";
  }
  throw Error(path_ + ": no tensor named " + quote_name(name) + " (" + hint.str() + ")");
}

Tensor Checkpoint::tensor(const std::string& name) const {
  const TensorEntry& entry = at(name);
  const Entry& stored = entries_.at(name);
  const auto address = reinterpret_cast<uintptr_t>(entry.data);
  if (entry.nbytes == 0 || address % static_cast<uintptr_t>(dtype_size(entry.dtype)) == 0)
    return Tensor::from_storage(storages_[stored.file_index], stored.offset, entry.shape, entry.dtype);
  Tensor copy = Tensor::zeros(entry.shape, entry.dtype);
  if (entry.nbytes > 0) std::memcpy(copy.raw_data(), entry.data, static_cast<size_t>(entry.nbytes));
  return copy;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const auto& [name, entry] : entries_) out.push_back(name);
  return out;
}

namespace {

void write_all(int fd, const void* data, size_t size, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t written = ::write(fd, p, size);
    if (written < 0 && errno == EINTR) continue;
    FASTAR_CHECK(written > 0, path << ": cannot write: " << errno_text(written < 0 ? errno : EIO)
                                   << "; check the folder is writable and the disk has space");
    p += written;
    size -= static_cast<size_t>(written);
  }
}

}  // namespace

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [key, value] : metadata) meta[key] = value;
    header["__metadata__"] = std::move(meta);
  }
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    FASTAR_CHECK(name != "__metadata__", path << ": \"__metadata__\" is reserved and cannot name a tensor");
    FASTAR_CHECK(!header.contains(name), path << ": tensor " << quote_name(name) << " is given twice");
    FASTAR_CHECK(t.defined(), path << ": tensor " << quote_name(name) << " is undefined");
    FASTAR_CHECK(t.device() == Device::CPU,
                 path << ": tensor " << quote_name(name) << " is on the GPU; copy it to the host before writing");
    FASTAR_CHECK(t.is_contiguous(), path << ": tensor " << quote_name(name) << " is not contiguous; clone() it first");
    const uint64_t nbytes = static_cast<uint64_t>(t.nbytes());
    header[name] = {{"dtype", std::string(dtype_name(t.dtype()))},
                    {"shape", t.shape()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception& e) {
    FASTAR_FAIL(path << ": cannot encode the header (" << e.what() << "); names and metadata must be UTF-8");
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  unsigned char length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>(static_cast<uint64_t>(text.size()) >> (8 * i));

  const std::string temp = path + ".tmp-" + std::to_string(::getpid());
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  FASTAR_CHECK(fd >= 0, path << ": cannot create " << temp << ": " << errno_text(errno)
                             << "; check the folder exists and is writable");
  try {
    write_all(fd, length, sizeof(length), path);
    write_all(fd, text.data(), text.size(), path);
    for (const auto& [name, t] : tensors)
      if (t.nbytes() > 0) write_all(fd, t.raw_data(), static_cast<size_t>(t.nbytes()), path);
    FASTAR_CHECK(::fsync(fd) == 0, path << ": cannot flush to disk: " << errno_text(errno));
    const int closed = ::close(fd);
    fd = -1;
    FASTAR_CHECK(closed == 0, path << ": cannot close: " << errno_text(errno));
    FASTAR_CHECK(::rename(temp.c_str(), path.c_str()) == 0,
                 path << ": cannot rename " << temp << " into place: " << errno_text(errno));
  } catch (...) {
    if (fd >= 0) ::close(fd);
    ::unlink(temp.c_str());
    throw;
  }
}

}  // namespace fastar
