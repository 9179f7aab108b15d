#include "codec/trace.h"

#include <cstdint>

#include "absl/random/random.h"
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

}  // namespace agentfleet
