// Tests for enroll-bridge/job_table.h: duplicates never start a second
// job, pending jobs come back when due, and the per-device rate limit.
#include "enroll-bridge/job_table.h"

#include <gtest/gtest.h>

namespace certacl::enroll {
namespace {

ReplyTo To(const std::string& request_id) {
  ReplyTo r;
  r.accepted_topic = "$enroll/m-1/simplereenroll/accepted";
  r.rejected_topic = "$enroll/m-1/simplereenroll/rejected";
  r.request_id = request_id;
  return r;
}

JobInput Input(const std::string& identity = "m-1") {
  JobInput in;
  in.identity = identity;
  in.csr_der = "csr";
  return in;
}

Outcome Accepted(const std::string& serial) {
  Outcome o;
  o.accepted = true;
  o.issued.serial = serial;
  return o;
}

TEST(JobKey, IsIdentityAndTheCsrHash) {
  EXPECT_EQ(JobKey("m-1", "abc"), "m-1/ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_NE(JobKey("m-1", "abc"), JobKey("m-2", "abc"));
}

TEST(JobTable, ADuplicateWhileRunningJoinsAndGetsTheSameAnswer) {
  JobTable t(10, 3600, 86400);
  const std::string key = JobKey("m-1", "csr");
  EXPECT_EQ(t.Admit(key, Input(), To("r-1"), 100).kind, JobTable::Kind::kStart);
  EXPECT_EQ(t.Admit(key, Input(), To("r-1"), 100).kind, JobTable::Kind::kJoined);  // QoS 1 redelivery
  EXPECT_EQ(t.Admit(key, Input(), To("r-2"), 101).kind, JobTable::Kind::kJoined);  // a retry with a new id
  std::vector<ReplyTo> waiters = t.Finish(key, Accepted("0A"), true, 102);
  ASSERT_EQ(waiters.size(), 2u);  // the redelivery did not add a second waiter
  EXPECT_EQ(waiters[0].request_id, "r-1");
  EXPECT_EQ(waiters[1].request_id, "r-2");
  JobTable::Admission again = t.Admit(key, Input(), To("r-3"), 200);
  ASSERT_EQ(again.kind, JobTable::Kind::kDone);
  EXPECT_EQ(again.outcome->issued.serial, "0A");
}

TEST(JobTable, AnswersAreForgottenAfterTheTtl) {
  JobTable t(10, 3600, 86400);
  const std::string key = JobKey("m-1", "csr");
  t.Admit(key, Input(), To("r-1"), 100);
  t.Finish(key, Accepted("0A"), true, 100);
  EXPECT_EQ(t.Admit(key, Input(), To("r-1"), 3699).kind, JobTable::Kind::kDone);
  EXPECT_EQ(t.Admit(key, Input(), To("r-1"), 3700).kind, JobTable::Kind::kStart);
}

TEST(JobTable, AFailureThatIssuedNothingMayBeTriedAgain) {
  JobTable t(10, 3600, 86400);
  const std::string key = JobKey("m-1", "csr");
  t.Admit(key, Input(), To("r-1"), 100);
  Outcome failed;
  failed.rejection = Reject(ErrorCode::kUpstreamUnavailable, "down", 30);
  EXPECT_EQ(t.Finish(key, failed, false, 101).size(), 1u);
  EXPECT_EQ(t.Admit(key, Input(), To("r-1"), 102).kind, JobTable::Kind::kStart);
}

TEST(JobTable, PendingJobsTellEachWaiterOnceAndComeBackWhenDue) {
  JobTable t(10, 3600, 86400);
  const std::string key = JobKey("m-1", "csr");
  t.Admit(key, Input(), To("r-1"), 100);
  JobTable::Parked p = t.Pend(key, 105, 100);
  ASSERT_FALSE(p.gave_up);
  ASSERT_EQ(p.to_tell.size(), 1u);
  EXPECT_EQ(t.NextDue(), 105);
  JobTable::Admission dup = t.Admit(key, Input(), To("r-2"), 102);
  EXPECT_EQ(dup.kind, JobTable::Kind::kPending);
  EXPECT_EQ(dup.retry_after_s, 3);
  EXPECT_TRUE(t.TakeDue(104).empty());
  EXPECT_EQ(t.TakeDue(105), std::vector<std::string>{key});
  EXPECT_TRUE(t.TakeDue(106).empty());  // running now: handed out once
  // Still pending upstream: nobody is told twice.
  EXPECT_TRUE(t.Pend(key, 110, 105).to_tell.empty());
  EXPECT_EQ(t.Finish(key, Accepted("0B"), true, 110).size(), 2u);
}

TEST(JobTable, GivesUpOnACaThatStaysPendingPastMaxPending) {
  JobTable t(10, 3600, 60);
  const std::string key = JobKey("m-1", "csr");
  t.Admit(key, Input(), To("r-1"), 100);
  EXPECT_FALSE(t.Pend(key, 150, 100).gave_up);
  EXPECT_TRUE(t.Pend(key, 161, 150).gave_up);
}

TEST(JobTable, RateLimitCountsNewJobsPerIdentityOnly) {
  JobTable t(2, 3600, 86400);
  EXPECT_EQ(t.Admit(JobKey("m-1", "a"), Input(), To("1"), 1000).kind, JobTable::Kind::kStart);
  EXPECT_EQ(t.Admit(JobKey("m-1", "b"), Input(), To("2"), 1010).kind, JobTable::Kind::kStart);
  EXPECT_EQ(t.Admit(JobKey("m-1", "a"), Input(), To("1"), 1020).kind, JobTable::Kind::kJoined);  // not counted
  JobTable::Admission limited = t.Admit(JobKey("m-1", "c"), Input(), To("3"), 1020);
  EXPECT_EQ(limited.kind, JobTable::Kind::kRateLimited);
  EXPECT_EQ(limited.retry_after_s, 3600 - 20);
  EXPECT_EQ(t.Admit(JobKey("m-2", "c"), Input("m-2"), To("3"), 1020).kind, JobTable::Kind::kStart);
  EXPECT_EQ(t.Admit(JobKey("m-1", "c"), Input(), To("3"), 4600).kind, JobTable::Kind::kStart);
}

TEST(JobTable, AnotherBridgesJobMakesADuplicateWaitInsteadOfReachingTheCa) {
  JobTable t(10, 3600, 86400);
  const std::string key = JobKey("m-1", "csr");
  t.Elsewhere(key, 130, 100);
  JobTable::Admission a = t.Admit(key, Input(), To("r-2"), 110);
  EXPECT_EQ(a.kind, JobTable::Kind::kPending);
  EXPECT_EQ(a.retry_after_s, 20);
  t.DoneElsewhere(key, Accepted("0C"), 120);
  JobTable::Admission done = t.Admit(key, Input(), To("r-3"), 121);
  ASSERT_EQ(done.kind, JobTable::Kind::kDone);
  EXPECT_EQ(done.outcome->issued.serial, "0C");
}

TEST(JobTable, AnotherBridgesClaimLapsesAndNeverOverridesALocalJob) {
  JobTable t(10, 3600, 86400);
  const std::string key = JobKey("m-1", "csr");
  t.Elsewhere(key, 130, 100);
  EXPECT_EQ(t.Admit(key, Input(), To("r-1"), 130).kind, JobTable::Kind::kStart);  // the other bridge went quiet
  t.Elsewhere(key, 200, 131);                                                     // ours runs: ignored
  t.DoneElsewhere(key, Accepted("0D"), 132);                                      // ignored too
  EXPECT_EQ(t.Admit(key, Input(), To("r-2"), 133).kind, JobTable::Kind::kJoined);
  const std::string other = JobKey("m-1", "other");
  t.Elsewhere(other, 300, 100);
  t.GoneElsewhere(other);
  EXPECT_EQ(t.Admit(other, Input(), To("r-3"), 134).kind, JobTable::Kind::kStart);
}

}  // namespace
}  // namespace certacl::enroll
