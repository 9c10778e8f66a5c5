// job_table.cc: see job_table.h.
#include "enroll-bridge/job_table.h"

#include <openssl/sha.h>

#include <algorithm>
#include <climits>

namespace certacl::enroll {

std::string JobKey(std::string_view identity, std::string_view csr_der) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(csr_der.data()), csr_der.size(), digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string key(identity);
  key += '/';
  for (unsigned char b : digest) {
    key += kHex[b >> 4];
    key += kHex[b & 0xf];
  }
  return key;
}

JobTable::JobTable(int per_device_per_hour, int64_t duplicate_ttl_s, int64_t max_pending_s)
    : per_hour_(per_device_per_hour), ttl_s_(duplicate_ttl_s), max_pending_s_(max_pending_s) {}

JobTable::Admission JobTable::Admit(const std::string& key, const JobInput& input, const ReplyTo& reply,
                                    int64_t now) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(key);
  if (it != jobs_.end() && ((it->second.state == Job::State::kDone && now - it->second.done_at >= ttl_s_) ||
                             (it->second.state == Job::State::kElsewhere && now >= it->second.due))) {
    jobs_.erase(it);
    it = jobs_.end();
  }
  if (it != jobs_.end()) {
    Job& job = it->second;
    auto same = [&](const Waiter& w) { return w.reply == reply; };
    switch (job.state) {
      case Job::State::kDone:
        return {Kind::kDone, 0, job.outcome};
      case Job::State::kRunning:
        if (std::none_of(job.waiters.begin(), job.waiters.end(), same)) job.waiters.push_back({reply, false});
        return {Kind::kJoined, 0, nullptr};
      case Job::State::kPending: {
        if (std::none_of(job.waiters.begin(), job.waiters.end(), same)) job.waiters.push_back({reply, true});
        return {Kind::kPending, std::max<int64_t>(1, job.due - now), nullptr};
      }
      case Job::State::kElsewhere:
        return {Kind::kPending, std::max<int64_t>(1, job.due - now), nullptr};
    }
  }
  if (per_hour_ > 0) {
    std::deque<int64_t>& starts = starts_[input.identity];
    while (!starts.empty() && now - starts.front() >= 3600) starts.pop_front();
    if (starts.size() >= static_cast<size_t>(per_hour_)) {
      return {Kind::kRateLimited, std::max<int64_t>(1, starts.front() + 3600 - now), nullptr};
    }
    starts.push_back(now);
  }
  Job job;
  job.input = std::make_shared<const JobInput>(input);
  job.first_seen = now;
  job.waiters.push_back({reply, false});
  jobs_.emplace(key, std::move(job));
  return {Kind::kStart, 0, nullptr};
}

std::shared_ptr<const JobInput> JobTable::Input(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(key);
  return it == jobs_.end() ? nullptr : it->second.input;
}

std::vector<ReplyTo> JobTable::Finish(const std::string& key, Outcome outcome, bool keep, int64_t now) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(key);
  if (it == jobs_.end()) return {};
  std::vector<ReplyTo> out;
  for (Waiter& w : it->second.waiters) out.push_back(std::move(w.reply));
  if (keep) {
    Job& job = it->second;
    job.waiters.clear();
    job.state = Job::State::kDone;
    job.done_at = now;
    job.outcome = std::make_shared<const Outcome>(std::move(outcome));
  } else {
    jobs_.erase(it);
  }
  return out;
}

JobTable::Parked JobTable::Pend(const std::string& key, int64_t due, int64_t now) {
  std::lock_guard<std::mutex> lock(mu_);
  Parked parked;
  auto it = jobs_.find(key);
  if (it == jobs_.end()) return parked;
  Job& job = it->second;
  if (due - job.first_seen > max_pending_s_) {
    parked.gave_up = true;
    return parked;
  }
  job.state = Job::State::kPending;
  job.due = std::max(due, now + 1);
  for (Waiter& w : job.waiters) {
    if (!w.told_pending) {
      w.told_pending = true;
      parked.to_tell.push_back(w.reply);
    }
  }
  return parked;
}

std::vector<std::string> JobTable::TakeDue(int64_t now) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> due;
  for (auto& [key, job] : jobs_) {
    if (job.state == Job::State::kPending && job.due <= now) {
      job.state = Job::State::kRunning;
      due.push_back(key);
    }
  }
  return due;
}

int64_t JobTable::NextDue() const {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t next = INT64_MAX;
  for (const auto& [key, job] : jobs_) {
    if (job.state == Job::State::kPending) next = std::min(next, job.due);
  }
  return next;
}

void JobTable::Elsewhere(const std::string& key, int64_t until, int64_t now) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(key);
  if (it != jobs_.end() && it->second.state != Job::State::kElsewhere) return;
  if (until <= now) {
    if (it != jobs_.end()) jobs_.erase(it);
    return;
  }
  Job& job = jobs_[key];
  job.state = Job::State::kElsewhere;
  job.due = until;
}

void JobTable::DoneElsewhere(const std::string& key, Outcome outcome, int64_t done_at) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(key);
  if (it != jobs_.end() && it->second.state != Job::State::kElsewhere) return;
  Job& job = jobs_[key];
  job.state = Job::State::kDone;
  job.done_at = done_at;
  job.outcome = std::make_shared<const Outcome>(std::move(outcome));
}

void JobTable::GoneElsewhere(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(key);
  if (it != jobs_.end() && it->second.state == Job::State::kElsewhere) jobs_.erase(it);
}

void JobTable::Expire(int64_t now) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    if ((it->second.state == Job::State::kDone && now - it->second.done_at >= ttl_s_) ||
        (it->second.state == Job::State::kElsewhere && now >= it->second.due)) {
      it = jobs_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = starts_.begin(); it != starts_.end();) {
    while (!it->second.empty() && now - it->second.front() >= 3600) it->second.pop_front();
    it = it->second.empty() ? starts_.erase(it) : std::next(it);
  }
}

size_t JobTable::jobs() const {
  std::lock_guard<std::mutex> lock(mu_);
  return jobs_.size();
}

}  // namespace certacl::enroll
