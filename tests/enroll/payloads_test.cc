// Tests for enroll-bridge/payloads.h: request topics, response topics and
// the JSON bodies of docs/enroll.md.
#include "enroll-bridge/payloads.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace certacl::enroll {
namespace {

TEST(SplitRequestTopic, AcceptsExactlyIdAndOperation) {
  std::string id, op;
  ASSERT_TRUE(SplitRequestTopic("$enroll", "$enroll/m-1/simplereenroll", &id, &op));
  EXPECT_EQ(id, "m-1");
  EXPECT_EQ(op, "simplereenroll");
  ASSERT_TRUE(SplitRequestTopic("acme/$enroll", "acme/$enroll/m-1/cacerts", &id, &op));
  EXPECT_EQ(id, "m-1");
  EXPECT_FALSE(SplitRequestTopic("$enroll", "$enroll/m-1/simplereenroll/accepted", &id, &op));
  EXPECT_FALSE(SplitRequestTopic("$enroll", "$enroll/m-1", &id, &op));
  EXPECT_FALSE(SplitRequestTopic("$enroll", "$enroll//simplereenroll", &id, &op));
  EXPECT_FALSE(SplitRequestTopic("$enroll", "$enroll/m-1/", &id, &op));
  EXPECT_FALSE(SplitRequestTopic("$enroll", "$enrollx/m-1/simplereenroll", &id, &op));
  EXPECT_FALSE(SplitRequestTopic("$enroll", "other/m-1/simplereenroll", &id, &op));
}

TEST(ResponseTopicAllowed, OnlyBelowTheDevicesOwnSubtreeAndNeverRequestShaped) {
  EXPECT_TRUE(ResponseTopicAllowed("$enroll", "m-1", "$enroll/m-1/reply/r-1"));
  EXPECT_TRUE(ResponseTopicAllowed("$enroll", "m-1", "$enroll/m-1/simplereenroll/accepted"));
  EXPECT_FALSE(ResponseTopicAllowed("$enroll", "m-1", "$enroll/m-1/simplereenroll"));  // a request topic
  EXPECT_FALSE(ResponseTopicAllowed("$enroll", "m-1", "$enroll/m-2/reply/r-1"));       // another device
  EXPECT_FALSE(ResponseTopicAllowed("$enroll", "m-1", "$enroll/m-10/reply/r-1"));
  EXPECT_FALSE(ResponseTopicAllowed("$enroll", "m-1", "meters/m-1/reply/x"));
  EXPECT_FALSE(ResponseTopicAllowed("$enroll", "m-1", "$enroll/m-1/reply/+"));
  EXPECT_FALSE(ResponseTopicAllowed("$enroll", "m-1", "$enroll/m-1/reply/#"));
  EXPECT_FALSE(ResponseTopicAllowed("$enroll", "m-1", "$enroll/m-1//x"));
  EXPECT_FALSE(ResponseTopicAllowed("$enroll", "m-1", "$enroll/m-1/x/"));
  EXPECT_FALSE(ResponseTopicAllowed("$enroll", "", "$enroll//x/y"));
}

TEST(ParseRequest, TakesRequestIdAndCsr) {
  Request r;
  std::string why;
  ASSERT_TRUE(ParseRequest(R"({"requestId":"r-1","csr":"MIIB","extra":1})", true, &r, &why)) << why;
  EXPECT_EQ(r.request_id, "r-1");
  EXPECT_EQ(r.csr, "MIIB");
  ASSERT_TRUE(ParseRequest("", false, &r, &why)) << why;  // cacerts with no body
  EXPECT_EQ(r.request_id, "");
}

TEST(ParseRequest, RefusesEachMalformedShapeWithAReason) {
  Request r;
  std::string why;
  EXPECT_FALSE(ParseRequest("not json", true, &r, &why));
  EXPECT_EQ(why, "the payload is not JSON");
  EXPECT_FALSE(ParseRequest("[1,2]", true, &r, &why));
  EXPECT_EQ(why, "the payload must be a JSON object");
  EXPECT_FALSE(ParseRequest(R"({"requestId":"r-1"})", true, &r, &why));
  EXPECT_EQ(why, "the request has no csr");
  EXPECT_FALSE(ParseRequest(R"({"csr":5})", true, &r, &why));
  EXPECT_FALSE(ParseRequest(R"({"requestId":7,"csr":"x"})", true, &r, &why));
  EXPECT_FALSE(ParseRequest(R"({"requestId":"","csr":"x"})", true, &r, &why));
  EXPECT_FALSE(ParseRequest(std::string(R"({"requestId":")") + std::string(65, 'a') + R"(","csr":"x"})", true, &r, &why));
  EXPECT_FALSE(ParseRequest("{\"requestId\":\"a\\nb\",\"csr\":\"x\"}", true, &r, &why));
}

TEST(SalvageRequestId, KeepsAUsableIdFromARequestThatFailsLater) {
  EXPECT_EQ(SalvageRequestId(R"({"requestId":"r-9","csr":1})"), "r-9");
  EXPECT_EQ(SalvageRequestId("garbage"), "");
  EXPECT_EQ(SalvageRequestId(R"({"requestId":"a\u0001"})"), "");
}

TEST(RejectedJson, HasTheDocumentedFields) {
  const nlohmann::json j = nlohmann::json::parse(
      RejectedJson("r-1", Reject(ErrorCode::kRateLimited, "slow down", 42)));
  EXPECT_EQ(j["requestId"], "r-1");
  EXPECT_EQ(j["statusCode"], 429);
  EXPECT_EQ(j["errorCode"], "RateLimited");
  EXPECT_EQ(j["errorMessage"], "slow down");
  EXPECT_EQ(j["retryAfter"], 42);
}

TEST(ErrorCodes, EveryCodeHasItsDocumentedNameAndStatus) {
  const std::pair<ErrorCode, std::pair<const char*, int>> expected[] = {
      {ErrorCode::kInvalidRequest, {"InvalidRequest", 400}},
      {ErrorCode::kPayloadTooLarge, {"PayloadTooLarge", 413}},
      {ErrorCode::kInvalidCsr, {"InvalidCsr", 400}},
      {ErrorCode::kKeyPolicy, {"KeyPolicy", 400}},
      {ErrorCode::kSubjectMismatch, {"SubjectMismatch", 403}},
      {ErrorCode::kIdentityMismatch, {"IdentityMismatch", 403}},
      {ErrorCode::kNotYetRenewable, {"NotYetRenewable", 409}},
      {ErrorCode::kRateLimited, {"RateLimited", 429}},
      {ErrorCode::kRequestPending, {"RequestPending", 202}},
      {ErrorCode::kUpstreamUnavailable, {"UpstreamUnavailable", 503}},
      {ErrorCode::kIssuedCertificateInvalid, {"IssuedCertificateInvalid", 502}},
      {ErrorCode::kUnsupportedOperation, {"UnsupportedOperation", 404}},
  };
  for (const auto& [code, want] : expected) {
    EXPECT_STREQ(ErrorCodeName(code), want.first);
    EXPECT_EQ(DefaultStatus(code), want.second) << want.first;
  }
}

TEST(Rfc3339, FormatsUtc) {
  EXPECT_EQ(Rfc3339(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(Rfc3339(1798761600), "2027-01-01T00:00:00Z");
}

}  // namespace
}  // namespace certacl::enroll
