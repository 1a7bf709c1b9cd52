// Status propagation helpers for absl::Status / absl::StatusOr. Header only; usable from any
// thread.
#ifndef DROVER_COMMON_STATUS_MACROS_H_
#define DROVER_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define DROVER_CONCAT_INNER_(a, b) a##b
#define DROVER_CONCAT_(a, b) DROVER_CONCAT_INNER_(a, b)

// Returns from the enclosing function when `expr` (an absl::Status) is not OK.
#define DROVER_RETURN_IF_ERROR(expr)               \
  do {                                             \
    ::absl::Status drover_status_ = (expr);        \
    if (!drover_status_.ok()) return drover_status_; \
  } while (0)

// `DROVER_ASSIGN_OR_RETURN(auto x, Foo());` assigns the value of an absl::StatusOr or returns
// its error from the enclosing function.
#define DROVER_ASSIGN_OR_RETURN(lhs, expr) \
  DROVER_ASSIGN_OR_RETURN_IMPL_(DROVER_CONCAT_(drover_statusor_, __LINE__), lhs, expr)

#define DROVER_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return std::move(tmp).status();      \
  lhs = std::move(tmp).value()

#endif  // DROVER_COMMON_STATUS_MACROS_H_
