#include "codec/trace.h"

#include <algorithm>
#include <cstdint>

#include "absl/random/random.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace agentfleet {
namespace {

bool IsLowerHex(absl::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool AllZero(absl::string_view s) { return s.find_first_not_of('0') == absl::string_view::npos; }

// `bytes` random bytes in lower-case hex, written at `out` (2 * bytes chars).
// Every work item and result gets a new span id: formatted in place.
void RandomHex(int bytes, char* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  thread_local absl::BitGen gen;
  for (int i = 0; i < bytes; i += 8) {
    uint64_t v = absl::Uniform<uint64_t>(gen);
    for (int j = 0; j < 8 && i + j < bytes; ++j, v >>= 8) {
      *out++ = kHex[(v >> 4) & 0xf];
      *out++ = kHex[v & 0xf];
    }
  }
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

std::string NewTraceparent() {
  std::string out = "00-" + std::string(32, '0') + "-" + std::string(16, '0') + "-01";
  RandomHex(16, &out[3]);
  RandomHex(8, &out[36]);
  return out;
}

std::string ChildTraceparent(absl::string_view parent) {
  if (!IsValidTraceparent(parent)) return NewTraceparent();
  std::string out(parent);  // the trace id and flags kept, a new span id
  RandomHex(8, &out[36]);
  return out;
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
