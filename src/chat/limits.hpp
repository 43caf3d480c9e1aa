// The bounds one template and one render stay within, so that a hostile or broken template (or
// input) ends in a mii::error rather than a hang, a stack overflow or an exhausted memory. They
// are far above what real chat templates need; docs/chat-templates.md lists them.
#pragma once
#include <cstddef>
#include <cstdint>

#include "chat/value.hpp"  // max_string_bytes, max_list_items

namespace mii::detail::jinja {

inline constexpr std::size_t max_template_bytes = std::size_t{4} << 20;  // template source
inline constexpr int max_nesting_depth = 200;          // nested expressions and blocks in the template text
inline constexpr int max_call_depth = 50;              // nested macro calls (recursion)
inline constexpr std::uint64_t max_steps = 5'000'000;  // expression evaluations + loop iterations per render
inline constexpr std::uint64_t max_work_bytes = std::uint64_t{512} << 20;  // bytes of strings and lists built per render
inline constexpr std::int64_t max_range = 100'000;     // range() length, as jinja2's sandbox (MAX_RANGE)

}  // namespace mii::detail::jinja
