#include <mii/runtime/stop_strings.hpp>

#include <algorithm>

namespace mii::runtime {

stop_matcher::stop_matcher(std::vector<std::string> stops) : stops_(std::move(stops)) {
  std::erase_if(stops_, [](const std::string& s) { return s.empty(); });
}

std::string stop_matcher::push(std::string_view text) {
  if (matched_) return {};
  if (stops_.empty()) return std::string(text);
  pending_.append(text);
  // Generation stops where the first stop string is completed, exactly as if the text had arrived
  // one byte at a time, so that how it is split into pieces never changes the output: of two stop
  // strings in one piece, the one that ends first wins (for "abcd" and "bc" in "xabcd", "bc"), and
  // among those ending at that byte the output is cut where the longest begins.
  std::size_t end = std::string::npos;
  for (const auto& s : stops_)
    if (const auto at = pending_.find(s); at != std::string::npos) end = std::min(end, at + s.size());
  if (end != std::string::npos) {
    std::size_t cut = end;
    for (const auto& s : stops_)
      if (s.size() <= end && pending_.compare(end - s.size(), s.size(), s) == 0) cut = std::min(cut, end - s.size());
    matched_ = true;
    std::string out = pending_.substr(0, cut);
    pending_.clear();
    return out;
  }
  // Hold back the longest tail that is a proper prefix of some stop string.
  std::size_t hold = 0;
  for (const auto& s : stops_) {
    for (std::size_t len = std::min(s.size() - 1, pending_.size()); len > hold; --len) {
      if (pending_.compare(pending_.size() - len, len, s, 0, len) == 0) {
        hold = len;
        break;
      }
    }
  }
  std::string out = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return out;
}

std::string stop_matcher::flush() {
  std::string out;
  out.swap(pending_);
  return matched_ ? std::string() : out;
}

}  // namespace mii::runtime
