#include "codec/trace.h"

#include <algorithm>
#include <cstdint>

#include "absl/random/random.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace agentfleet {
namespace {

bool IsLowerHex(absl::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool AllZero(absl::string_view s) { return s.find_first_not_of('0') == absl::string_view::npos; }

std::string RandomHex(int bytes) {
  thread_local absl::BitGen gen;
  std::string out;
  for (int i = 0; i < bytes; i += 8) {
    uint64_t v = absl::Uniform<uint64_t>(gen);
    out += absl::StrFormat("%016x", v);
  }
  return out.substr(0, bytes * 2);
}

}  // namespace

bool IsValidTraceparent(absl::string_view tp) {
  // 00-<32 hex trace id>-<16 hex span id>-<2 hex flags>
  if (tp.size() != 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-') return false;
  absl::string_view version = tp.substr(0, 2), trace = tp.substr(3, 32), span = tp.substr(36, 16),
                   flags = tp.substr(53, 2);
  return version == "00" && IsLowerHex(trace) && IsLowerHex(span) && IsLowerHex(flags) &&
         !AllZero(trace) && !AllZero(span);
}

std::string NewTraceparent() { return absl::StrCat("00-", RandomHex(16), "-", RandomHex(8), "-01"); }

std::string ChildTraceparent(absl::string_view parent) {
  if (!IsValidTraceparent(parent)) return NewTraceparent();
  return absl::StrCat("00-", parent.substr(3, 32), "-", RandomHex(8), "-", parent.substr(53, 2));
}

std::string TraceId(absl::string_view tp) {
  return IsValidTraceparent(tp) ? std::string(tp.substr(3, 32)) : std::string();
}

PackedTraceparent::PackedTraceparent(absl::string_view tp) {
  if (!IsValidTraceparent(tp)) return;
  std::string bytes = absl::HexStringToBytes(absl::StrCat(tp.substr(3, 32), tp.substr(36, 16), tp.substr(53, 2)));
  std::copy(bytes.begin(), bytes.end(), bytes_.begin());
  set_ = true;
}

std::string PackedTraceparent::str() const {
  if (!set_) return std::string();
  // Written in place (one allocation): it is formatted for every work item.
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "00-";
  out.resize(55, '-');
  size_t at = 3;
  for (size_t i = 0; i < bytes_.size(); ++i) {
    if (i == 16 || i == 24) ++at;  // the dashes before the span id and the flags
    out[at++] = kHex[bytes_[i] >> 4];
    out[at++] = kHex[bytes_[i] & 0xf];
  }
  return out;
}

}  // namespace agentfleet
