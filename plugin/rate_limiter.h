// rate_limiter.h: at most N events per fixed one-minute window, counting
// what was suppressed, so a connection storm cannot flood the broker log.
// Pure and single-threaded (used on the broker thread only).
#ifndef CERTACL_PLUGIN_RATE_LIMITER_H_
#define CERTACL_PLUGIN_RATE_LIMITER_H_

#include <cstdint>

namespace certacl::plugin {

class RateLimiter {
 public:
  explicit RateLimiter(int per_minute) : per_minute_(per_minute) {}

  // Whether an event at `now_s` may be logged. When a new window starts and
  // events were suppressed in the previous one, *suppressed_before gets
  // their number (else 0) so the caller can say so once.
  bool Allow(int64_t now_s, uint64_t* suppressed_before) {
    *suppressed_before = 0;
    if (now_s - window_start_ >= 60) {
      *suppressed_before = suppressed_;
      window_start_ = now_s;
      used_ = 0;
      suppressed_ = 0;
    }
    if (used_ < per_minute_) {
      ++used_;
      return true;
    }
    ++suppressed_;
    return false;
  }

 private:
  int per_minute_;
  int used_ = 0;
  int64_t window_start_ = INT64_MIN / 2;
  uint64_t suppressed_ = 0;
};

}  // namespace certacl::plugin

#endif  // CERTACL_PLUGIN_RATE_LIMITER_H_
