// Stop strings across token boundaries. Text arrives in pieces (one per token); a stop string
// may straddle pieces, so the tail that could still grow into a stop string is held back until
// it either completes one (generation stops, the stop string itself is not output) or cannot.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace mii::runtime {

class stop_matcher {
 public:
  explicit stop_matcher(std::vector<std::string> stops = {});

  // Adds text; returns what is now safe to emit. After a match, matched() is true and the
  // returned text ends where the (earliest) stop string began.
  std::string push(std::string_view text);
  // End of generation without a match: everything held back.
  std::string flush();
  bool matched() const { return matched_; }
  bool empty() const { return stops_.empty(); }

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  bool matched_ = false;
};

}  // namespace mii::runtime
