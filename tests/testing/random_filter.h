// random_filter.h: random MQTT topic filters for the property tests of
// topic matching, intersection and the session's read coverage.
//
// RandomFilter(rng, max_levels, literal): 1 to max_levels levels, each '+'
// (1 in 6), '#' when it is the last level (1 in 6), or literal(rng). The
// result may be invalid only if literal() returns something that is not a
// topic level, and is "" if the only level is an empty literal. Fixed seeds
// make a failure reproducible.
#ifndef CERTACL_TESTS_TESTING_RANDOM_FILTER_H_
#define CERTACL_TESTS_TESTING_RANDOM_FILTER_H_

#include <random>
#include <string>

namespace certacl::testing {

template <class Literal>
std::string RandomFilter(std::mt19937& rng, int max_levels, Literal literal) {
  std::string f;
  const int levels = 1 + static_cast<int>(rng() % static_cast<unsigned>(max_levels));
  for (int l = 0; l < levels; ++l) {
    if (l) f += '/';
    const auto kind = rng() % 6;
    if (kind == 0) {
      f += '+';
    } else if (kind == 1 && l == levels - 1) {
      f += '#';
    } else {
      f += literal(rng);
    }
  }
  return f;
}

}  // namespace certacl::testing

#endif  // CERTACL_TESTS_TESTING_RANDOM_FILTER_H_
