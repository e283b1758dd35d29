// Writing an output file so that readers never see a partial one: the bytes go to
// "<path>.tmp-<pid>" first, which is renamed onto `path` only once complete; on any failure the
// temporary file is removed and fastar::Error names the path and the reason.
#pragma once

#include <string>
#include <string_view>

namespace fastar {

void write_file_atomically(const std::string& path, std::string_view contents);

}  // namespace fastar
