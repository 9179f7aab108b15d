// RETURN_IF_ERROR / ASSIGN_OR_RETURN: Debian's Abseil (20220623) ships no
// status macros, so this is the project's one small pair.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define AF_CONCAT_INNER_(a, b) a##b
#define AF_CONCAT_(a, b) AF_CONCAT_INNER_(a, b)

// Returns from the enclosing function if `expr` yields a non-OK Status.
#define RETURN_IF_ERROR(expr)                       \
  do {                                              \
    ::absl::Status af_status_ = (expr);             \
    if (!af_status_.ok()) return af_status_;        \
  } while (0)

// `lhs` = value of the StatusOr `rexpr`, or return its error.
#define ASSIGN_OR_RETURN(lhs, rexpr) \
  AF_ASSIGN_OR_RETURN_IMPL_(AF_CONCAT_(af_statusor_, __LINE__), lhs, rexpr)

#define AF_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                              \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()
