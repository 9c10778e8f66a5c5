// ocsp_test.cc: OcspRequest and VerifyOcspResponse against responses built
// in-process with OpenSSL's responder API (OCSP_basic_add1_status,
// OCSP_basic_sign, OCSP_response_create) for certificates from TestCa, plus
// one interop check against `openssl ocsp` run offline on request files.
#include "plugin/revocation/ocsp.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/ocsp.h>
#include <openssl/x509v3.h>

#include <atomic>
#include <cstdlib>
#include <ctime>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "policy/openssl_ptr.h"
#include "tests/testing/cert_builder.h"
#include "tests/testing/temp_dir.h"

namespace certacl::revocation {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;
using testing::CertBuilder;
using testing::DerOid;
using testing::DerSequence;
using testing::TestCa;

using OcspRequestPtr = OpenSslPtr<OCSP_REQUEST, OCSP_REQUEST_free>;
using OcspResponsePtr = OpenSslPtr<OCSP_RESPONSE, OCSP_RESPONSE_free>;
using OcspBasicPtr = OpenSslPtr<OCSP_BASICRESP, OCSP_BASICRESP_free>;
using OcspCertIdPtr = OpenSslPtr<OCSP_CERTID, OCSP_CERTID_free>;
using Asn1TimePtr = OpenSslPtr<ASN1_TIME, ASN1_TIME_free>;

constexpr int64_t kSkew = 300;
constexpr int64_t kMaxAge = 3600;

// A certificate and the key it certifies.
struct Signer {
  X509Ptr cert;
  EvpPkeyPtr key;
};

// `builder` is an lvalue: the chained setters return CertBuilder&.
Signer Make(CertBuilder& builder) {
  X509Ptr cert = builder.Build();
  return {std::move(cert), testing::Ref(builder.key())};
}

std::string OcspSigningEku() { return DerSequence({DerOid("1.3.6.1.5.5.7.3.9")}); }

Signer DelegatedResponder(const TestCa& ca, std::string_view cn = "OCSP Responder") {
  return Make(ca.Issue().Subject("CN", cn).Extension("2.5.29.37", OcspSigningEku()));
}

Asn1TimePtr Time(int64_t t) { return Asn1TimePtr(ASN1_TIME_set(nullptr, static_cast<time_t>(t))); }

// One SingleResponse to put in a built response.
struct Single {
  X509* leaf;
  X509* issuer;
  int status = V_OCSP_CERTSTATUS_GOOD;
  int reason = -1;
  int64_t revoked_at = 0;
};

struct ResponseSpec {
  std::vector<Single> singles;
  X509* signer = nullptr;
  EVP_PKEY* key = nullptr;
  int64_t this_update = 0;
  std::optional<int64_t> next_update;
  unsigned long sign_flags = 0;      // OCSP_NOCERTS, OCSP_RESPID_KEY
  const std::string* request_der = nullptr;  // copy its nonce
  std::optional<std::string> nonce;          // raw nonce bytes to add instead
};

std::string ToDer(OCSP_RESPONSE* response) {
  const int len = i2d_OCSP_RESPONSE(response, nullptr);
  EXPECT_GT(len, 0);
  std::string der(static_cast<size_t>(len), '\0');
  auto* p = reinterpret_cast<unsigned char*>(der.data());
  EXPECT_EQ(i2d_OCSP_RESPONSE(response, &p), len);
  return der;
}

std::string BuildResponse(const ResponseSpec& spec) {
  OcspBasicPtr basic(OCSP_BASICRESP_new());
  Asn1TimePtr this_update = Time(spec.this_update);
  Asn1TimePtr next_update = spec.next_update ? Time(*spec.next_update) : nullptr;
  for (const Single& s : spec.singles) {
    OcspCertIdPtr id(OCSP_cert_to_id(nullptr, s.leaf, s.issuer));
    Asn1TimePtr revoked_at = Time(s.revoked_at);
    EXPECT_NE(OCSP_basic_add1_status(basic.get(), id.get(), s.status, s.reason,
                                     s.status == V_OCSP_CERTSTATUS_REVOKED ? revoked_at.get() : nullptr,
                                     this_update.get(), next_update.get()),
              nullptr);
  }
  if (spec.request_der != nullptr) {
    const auto* p = reinterpret_cast<const unsigned char*>(spec.request_der->data());
    OcspRequestPtr req(d2i_OCSP_REQUEST(nullptr, &p, static_cast<long>(spec.request_der->size())));
    EXPECT_TRUE(req);
    EXPECT_EQ(OCSP_copy_nonce(basic.get(), req.get()), 1);
  }
  if (spec.nonce) {
    std::string bytes = *spec.nonce;
    EXPECT_EQ(OCSP_basic_add1_nonce(basic.get(), reinterpret_cast<unsigned char*>(bytes.data()),
                                    static_cast<int>(bytes.size())),
              1);
  }
  EXPECT_EQ(OCSP_basic_sign(basic.get(), spec.signer, spec.key, EVP_sha256(), nullptr, spec.sign_flags), 1);
  OcspResponsePtr response(OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, basic.get()));
  return ToDer(response.get());
}

class OcspTest : public ::testing::Test {
 protected:
  OcspTest()
      : ca_(TestCa::Create("Test Issuing CA")),
        other_ca_(TestCa::Create("Other CA")),
        leaf_(ca_.Issue().Subject("CN", "dev-1").Serial("1001").Build()),
        other_leaf_(ca_.Issue().Subject("CN", "dev-2").Serial("1002").Build()),
        responder_(DelegatedResponder(ca_)),
        now_(static_cast<int64_t>(std::time(nullptr))) {
    std::string error;
    request_ = OcspRequest::Create(leaf_.get(), ca_.cert.get(), /*nonce=*/false, &error);
    EXPECT_TRUE(request_) << error;
  }

  // A response about leaf_ by the delegated responder, fresh for now_.
  ResponseSpec Spec(int status = V_OCSP_CERTSTATUS_GOOD) {
    ResponseSpec spec;
    spec.singles = {{leaf_.get(), ca_.cert.get(), status}};
    spec.signer = responder_.cert.get();
    spec.key = responder_.key.get();
    spec.this_update = now_ - 60;
    spec.next_update = now_ + 3600;
    return spec;
  }

  // VerifyOcspResponse for request_ / ca_; "" or the error.
  std::string Verify(const std::string& der, OcspAnswer* answer = nullptr, const OcspRequest* request = nullptr,
                     X509* issuer = nullptr) {
    OcspAnswer local;
    std::string error;
    const bool ok = VerifyOcspResponse(der, request ? *request : *request_, issuer ? issuer : ca_.cert.get(), now_,
                                       kSkew, kMaxAge, answer ? answer : &local, &error);
    EXPECT_EQ(ok, error.empty()) << error;
    return ok ? "" : error;
  }

  TestCa ca_;
  TestCa other_ca_;
  X509Ptr leaf_;
  X509Ptr other_leaf_;
  Signer responder_;
  int64_t now_;
  std::unique_ptr<OcspRequest> request_;
};

// --- The request ---------------------------------------------------------------

TEST_F(OcspTest, RequestDerHasOneSha1CertIdForTheSerial) {
  for (bool nonce : {false, true}) {
    std::string error;
    std::unique_ptr<OcspRequest> request = OcspRequest::Create(leaf_.get(), ca_.cert.get(), nonce, &error);
    ASSERT_TRUE(request) << error;
    const std::string& der = request->der();
    const auto* p = reinterpret_cast<const unsigned char*>(der.data());
    OcspRequestPtr parsed(d2i_OCSP_REQUEST(nullptr, &p, static_cast<long>(der.size())));
    ASSERT_TRUE(parsed);
    EXPECT_EQ(p, reinterpret_cast<const unsigned char*>(der.data()) + der.size());
    ASSERT_EQ(OCSP_request_onereq_count(parsed.get()), 1);
    OCSP_CERTID* id = OCSP_onereq_get0_id(OCSP_request_onereq_get0(parsed.get(), 0));
    ASN1_OBJECT* md = nullptr;
    ASN1_INTEGER* serial = nullptr;
    ASSERT_EQ(OCSP_id_get0_info(nullptr, &md, nullptr, &serial, id), 1);
    EXPECT_EQ(OBJ_obj2nid(md), NID_sha1);
    EXPECT_EQ(ASN1_INTEGER_cmp(serial, X509_get0_serialNumber(leaf_.get())), 0);
    OcspCertIdPtr expected(OCSP_cert_to_id(nullptr, leaf_.get(), ca_.cert.get()));
    EXPECT_EQ(OCSP_id_cmp(id, expected.get()), 0);
    EXPECT_EQ(OCSP_id_cmp(request->cert_id(), expected.get()), 0);
    const bool has_nonce = OCSP_REQUEST_get_ext_by_NID(parsed.get(), NID_id_pkix_OCSP_Nonce, -1) >= 0;
    EXPECT_EQ(has_nonce, nonce);
    EXPECT_EQ(request->has_nonce(), nonce);
    if (!nonce) {
      EXPECT_LT(der.size(), 100u);  // ~69 bytes
    }
  }
}

TEST_F(OcspTest, RequestNeedsTheRightIssuer) {
  std::string error;
  EXPECT_FALSE(OcspRequest::Create(leaf_.get(), other_ca_.cert.get(), false, &error));
  EXPECT_THAT(error, HasSubstr("issuer certificate's subject is not the certificate's issuer name"));
  EXPECT_FALSE(OcspRequest::Create(nullptr, ca_.cert.get(), false, &error));
  EXPECT_THAT(error, HasSubstr("needs the certificate and its issuer"));
}

// --- Statuses ----------------------------------------------------------------------

TEST_F(OcspTest, GoodFromDelegatedResponder) {
  OcspAnswer answer;
  ASSERT_EQ(Verify(BuildResponse(Spec()), &answer), "");
  EXPECT_EQ(answer.status, CertStatus::kGood);
  EXPECT_EQ(answer.reason, -1);
  EXPECT_EQ(answer.revoked_at, 0);
  EXPECT_EQ(answer.this_update, now_ - 60);
  EXPECT_EQ(answer.next_update, now_ + 3600);
  EXPECT_STREQ(CertStatusName(answer.status), "good");
}

TEST_F(OcspTest, RevokedWithReasonAndTimeSignedByTheCa) {
  ResponseSpec spec = Spec(V_OCSP_CERTSTATUS_REVOKED);
  spec.singles[0].reason = OCSP_REVOKED_STATUS_KEYCOMPROMISE;
  spec.singles[0].revoked_at = 1704067200;  // 2024-01-01
  spec.signer = ca_.cert.get();
  spec.key = ca_.key.get();
  OcspAnswer answer;
  ASSERT_EQ(Verify(BuildResponse(spec), &answer), "");
  EXPECT_EQ(answer.status, CertStatus::kRevoked);
  EXPECT_EQ(answer.reason, 1);
  EXPECT_EQ(answer.revoked_at, 1704067200);
}

TEST_F(OcspTest, RevokedWithoutReason) {
  ResponseSpec spec = Spec(V_OCSP_CERTSTATUS_REVOKED);
  spec.singles[0].revoked_at = now_ - 10;
  OcspAnswer answer;
  ASSERT_EQ(Verify(BuildResponse(spec), &answer), "");
  EXPECT_EQ(answer.status, CertStatus::kRevoked);
  EXPECT_EQ(answer.reason, -1);
  EXPECT_EQ(answer.revoked_at, now_ - 10);
}

TEST_F(OcspTest, Unknown) {
  OcspAnswer answer;
  ASSERT_EQ(Verify(BuildResponse(Spec(V_OCSP_CERTSTATUS_UNKNOWN)), &answer), "");
  EXPECT_EQ(answer.status, CertStatus::kUnknown);
}

TEST_F(OcspTest, FindsOurAnswerAmongSeveral) {
  ResponseSpec spec = Spec();
  spec.singles = {{other_leaf_.get(), ca_.cert.get(), V_OCSP_CERTSTATUS_GOOD},
                  {leaf_.get(), ca_.cert.get(), V_OCSP_CERTSTATUS_REVOKED, 4, now_ - 100}};
  OcspAnswer answer;
  ASSERT_EQ(Verify(BuildResponse(spec), &answer), "");
  EXPECT_EQ(answer.status, CertStatus::kRevoked);
  EXPECT_EQ(answer.reason, 4);
}

// --- Signers ------------------------------------------------------------------------

TEST_F(OcspTest, CaSigningWithoutEmbeddedCertificate) {
  ResponseSpec spec = Spec();
  spec.signer = ca_.cert.get();
  spec.key = ca_.key.get();
  spec.sign_flags = OCSP_NOCERTS;
  EXPECT_EQ(Verify(BuildResponse(spec)), "");
}

TEST_F(OcspTest, ResponderIdByKey) {
  ResponseSpec spec = Spec();
  spec.sign_flags = OCSP_RESPID_KEY;
  EXPECT_EQ(Verify(BuildResponse(spec)), "");
}

TEST_F(OcspTest, DelegatedResponderMustBeEmbedded) {
  ResponseSpec spec = Spec();
  spec.sign_flags = OCSP_NOCERTS;
  EXPECT_EQ(Verify(BuildResponse(spec)),
            "OCSP response signer certificate not found (not in the response and not the issuer)");
}

TEST_F(OcspTest, ResponderWithoutOcspSigningEkuIsRejected) {
  Signer plain = Make(ca_.Issue().Subject("CN", "Just a device"));
  ResponseSpec spec = Spec();
  spec.signer = plain.cert.get();
  spec.key = plain.key.get();
  EXPECT_THAT(Verify(BuildResponse(spec)), StartsWith("OCSP response signer is not authorized: "));
}

TEST_F(OcspTest, ResponderFromAnotherCaIsRejected) {
  Signer foreign = DelegatedResponder(other_ca_);
  ResponseSpec spec = Spec();
  spec.signer = foreign.cert.get();
  spec.key = foreign.key.get();
  EXPECT_THAT(Verify(BuildResponse(spec)),
              StartsWith("OCSP response signer is not authorized: certificate verify error"));
}

TEST_F(OcspTest, AnotherCaSigningDirectlyIsRejected) {
  ResponseSpec spec = Spec();
  spec.signer = other_ca_.cert.get();
  spec.key = other_ca_.key.get();
  EXPECT_THAT(Verify(BuildResponse(spec)), StartsWith("OCSP response signer is not authorized: "));
}

TEST_F(OcspTest, ResponderWithTheIssuersNameButAnotherKeyIsRejected) {
  // Self-signed impostor whose subject is the CA's name, with the EKU.
  Signer impostor = Make(CertBuilder()
                             .Subject("CN", "Test Issuing CA")
                             .Extension("2.5.29.37", OcspSigningEku()));
  ResponseSpec spec = Spec();
  spec.signer = impostor.cert.get();
  spec.key = impostor.key.get();
  // Responder ID by name: the name resolves to the real issuer, whose key did not sign.
  EXPECT_EQ(Verify(BuildResponse(spec)), "OCSP response signature is invalid");
  // By key hash: the embedded impostor is the signer, and it does not chain to the issuer.
  spec.sign_flags = OCSP_RESPID_KEY;
  EXPECT_THAT(Verify(BuildResponse(spec)), StartsWith("OCSP response signer is not authorized: "));
}

TEST_F(OcspTest, ExpiredResponderCertificateIsRejected) {
  Signer expired = Make(ca_.Issue()
                            .Subject("CN", "Old Responder")
                            .Validity(now_ - 7200, now_ - 3600)
                            .Extension("2.5.29.37", OcspSigningEku()));
  ResponseSpec spec = Spec();
  spec.signer = expired.cert.get();
  spec.key = expired.key.get();
  EXPECT_THAT(Verify(BuildResponse(spec)), HasSubstr("certificate has expired"));
}

TEST_F(OcspTest, IntermediateIssuerWithItsOwnResponder) {
  TestCa sub = ca_.CreateIntermediate("Test Sub CA");
  X509Ptr leaf = sub.Issue().Subject("CN", "dev-9").Serial("0A").Build();
  std::string error;
  std::unique_ptr<OcspRequest> request = OcspRequest::Create(leaf.get(), sub.cert.get(), false, &error);
  ASSERT_TRUE(request) << error;

  Signer responder = DelegatedResponder(sub, "Sub Responder");
  ResponseSpec spec = Spec(V_OCSP_CERTSTATUS_GOOD);
  spec.singles = {{leaf.get(), sub.cert.get()}};
  spec.signer = responder.cert.get();
  spec.key = responder.key.get();
  EXPECT_EQ(Verify(BuildResponse(spec), nullptr, request.get(), sub.cert.get()), "");

  spec.signer = sub.cert.get();  // the intermediate signing itself
  spec.key = sub.key.get();
  EXPECT_EQ(Verify(BuildResponse(spec), nullptr, request.get(), sub.cert.get()), "");

  // A responder of the root is not the intermediate's delegate.
  spec.signer = responder_.cert.get();
  spec.key = responder_.key.get();
  EXPECT_THAT(Verify(BuildResponse(spec), nullptr, request.get(), sub.cert.get()),
              StartsWith("OCSP response signer is not authorized: "));
}

TEST_F(OcspTest, TamperedSignatureIsRejected) {
  ResponseSpec spec = Spec();
  spec.signer = ca_.cert.get();
  spec.key = ca_.key.get();
  spec.sign_flags = OCSP_NOCERTS;  // the signature is the last thing in the DER
  std::string der = BuildResponse(spec);
  der.back() = static_cast<char>(der.back() ^ 0x01);
  EXPECT_EQ(Verify(der), "OCSP response signature is invalid");
}

// --- Matching -------------------------------------------------------------------------

TEST_F(OcspTest, AnswerForAnotherSerialIsRejected) {
  ResponseSpec spec = Spec();
  spec.singles = {{other_leaf_.get(), ca_.cert.get()}};
  EXPECT_EQ(Verify(BuildResponse(spec)), "OCSP response has no answer for this certificate (serial 1001)");
}

TEST_F(OcspTest, AnswerAboutAnotherIssuerIsRejected) {
  // Same serial, another CA, signed by that CA: a valid response, but not ours.
  X509Ptr foreign_leaf = other_ca_.Issue().Subject("CN", "dev-1").Serial("1001").Build();
  ResponseSpec spec = Spec();
  spec.singles = {{foreign_leaf.get(), other_ca_.cert.get()}};
  spec.signer = other_ca_.cert.get();
  spec.key = other_ca_.key.get();
  OcspAnswer answer;
  std::string error;
  EXPECT_FALSE(VerifyOcspResponse(BuildResponse(spec), *request_, other_ca_.cert.get(), now_, kSkew, kMaxAge,
                                  &answer, &error));
  EXPECT_EQ(error, "OCSP response has no answer for this certificate (serial 1001)");
}

// --- Freshness --------------------------------------------------------------------------

TEST_F(OcspTest, StaleNextUpdateIsRejected) {
  ResponseSpec spec = Spec();
  spec.this_update = now_ - 7200;
  spec.next_update = now_ - kSkew - 1;
  EXPECT_THAT(Verify(BuildResponse(spec)), StartsWith("OCSP response is stale: nextUpdate "));
  spec.next_update = now_ - kSkew + 1;  // within the skew
  EXPECT_EQ(Verify(BuildResponse(spec)), "");
}

TEST_F(OcspTest, FutureThisUpdateIsRejected) {
  ResponseSpec spec = Spec();
  spec.this_update = now_ + kSkew + 1;
  spec.next_update = now_ + 7200;
  std::string error = Verify(BuildResponse(spec));
  EXPECT_THAT(error, StartsWith("OCSP response thisUpdate "));
  EXPECT_THAT(error, HasSubstr(" is in the future"));
  spec.this_update = now_ + kSkew - 1;
  EXPECT_EQ(Verify(BuildResponse(spec)), "");
}

TEST_F(OcspTest, NoNextUpdateLimitedByMaxAge) {
  ResponseSpec spec = Spec();
  spec.next_update.reset();
  spec.this_update = now_ - kMaxAge - 1;
  EXPECT_THAT(Verify(BuildResponse(spec)), StartsWith("OCSP response is stale: no nextUpdate and thisUpdate "));
  spec.this_update = now_ - kMaxAge + 1;
  OcspAnswer answer;
  ASSERT_EQ(Verify(BuildResponse(spec), &answer), "");
  EXPECT_EQ(answer.next_update, 0);
  // max_age_s < 0: no limit.
  spec.this_update = now_ - 10 * kMaxAge;
  std::string error;
  EXPECT_TRUE(VerifyOcspResponse(BuildResponse(spec), *request_, ca_.cert.get(), now_, kSkew, -1, &answer, &error))
      << error;
}

TEST_F(OcspTest, NextUpdateBeforeThisUpdateIsRejected) {
  ResponseSpec spec = Spec();
  spec.this_update = now_ - 60;
  spec.next_update = now_ - 120;
  EXPECT_THAT(Verify(BuildResponse(spec)), HasSubstr("is before its thisUpdate"));
}

TEST_F(OcspTest, NowIsInjected) {
  const std::string der = BuildResponse(Spec());  // thisUpdate now-60, nextUpdate now+3600
  OcspAnswer answer;
  std::string error;
  EXPECT_FALSE(VerifyOcspResponse(der, *request_, ca_.cert.get(), now_ + 86400, kSkew, kMaxAge, &answer, &error));
  EXPECT_THAT(error, StartsWith("OCSP response is stale"));
  EXPECT_FALSE(VerifyOcspResponse(der, *request_, ca_.cert.get(), now_ - 86400, kSkew, kMaxAge, &answer, &error));
  EXPECT_THAT(error, HasSubstr("is in the future"));
}

// --- Nonces -----------------------------------------------------------------------------

TEST_F(OcspTest, Nonces) {
  std::string error;
  std::unique_ptr<OcspRequest> with_nonce = OcspRequest::Create(leaf_.get(), ca_.cert.get(), true, &error);
  ASSERT_TRUE(with_nonce) << error;

  ResponseSpec spec = Spec();
  spec.request_der = &with_nonce->der();
  const std::string echoed = BuildResponse(spec);
  EXPECT_EQ(Verify(echoed, nullptr, with_nonce.get()), "");
  EXPECT_EQ(Verify(echoed), "");  // nonce only in the response: fine

  spec.request_der = nullptr;
  EXPECT_EQ(Verify(BuildResponse(spec), nullptr, with_nonce.get()), "");  // none in the response: fine

  spec.nonce = std::string(16, 'x');
  EXPECT_EQ(Verify(BuildResponse(spec), nullptr, with_nonce.get()), "OCSP response nonce does not match the request");
}

// --- Garbage and non-successful responses ------------------------------------------------

TEST_F(OcspTest, GarbageIsNotDer) {
  const std::string good = BuildResponse(Spec());
  EXPECT_EQ(Verify(""), "OCSP response is not DER (empty)");
  EXPECT_EQ(Verify("<html>502 Bad Gateway</html>"), "OCSP response is not DER");
  EXPECT_EQ(Verify(good.substr(0, good.size() - 1)), "OCSP response is not DER");
  EXPECT_EQ(Verify(good + std::string("\0", 1)), "OCSP response is not DER (1 trailing bytes)");
  EXPECT_EQ(Verify(std::string("\x30\x80\x00\x00", 4)), "OCSP response is not DER");
}

TEST_F(OcspTest, NonSuccessfulStatuses) {
  struct Case {
    int status;
    const char* name;
  };
  for (const Case& c : {Case{OCSP_RESPONSE_STATUS_MALFORMEDREQUEST, "malformedRequest"},
                        Case{OCSP_RESPONSE_STATUS_INTERNALERROR, "internalError"},
                        Case{OCSP_RESPONSE_STATUS_TRYLATER, "tryLater"},
                        Case{OCSP_RESPONSE_STATUS_SIGREQUIRED, "sigRequired"},
                        Case{OCSP_RESPONSE_STATUS_UNAUTHORIZED, "unauthorized"}}) {
    OcspResponsePtr response(OCSP_response_create(c.status, nullptr));
    EXPECT_EQ(Verify(ToDer(response.get())), std::string("OCSP responder says ") + c.name);
  }
}

TEST_F(OcspTest, SuccessfulWithoutBasicResponse) {
  EXPECT_EQ(Verify(std::string("\x30\x03\x0a\x01\x00", 5)), "OCSP response is not a basic OCSP response");
}

TEST_F(OcspTest, ConcurrentVerificationsShareOneRequest) {
  const std::string der = BuildResponse(Spec());
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        OcspAnswer answer;
        std::string error;
        if (VerifyOcspResponse(der, *request_, ca_.cert.get(), now_, kSkew, kMaxAge, &answer, &error) &&
            answer.status == CertStatus::kGood) {
          ++ok;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(ok.load(), 80);
}

// --- Interop: `openssl ocsp` as the responder (offline, request/response files) -----------

std::string Hex(const ASN1_INTEGER* serial) {
  BignumPtr bn(ASN1_INTEGER_to_BN(serial, nullptr));
  OpenSslString hex(BN_bn2hex(bn.get()));
  return hex.get();
}

TEST_F(OcspTest, OpensslResponderInterop) {
  if (std::system("openssl version > /dev/null 2>&1") != 0) GTEST_SKIP() << "no openssl CLI";
  testing::TempDir dir;
  const std::string ca = dir.Write("ca.pem", testing::ToPem(ca_.cert.get()));
  const std::string rsigner = dir.Write("responder.pem", testing::ToPem(responder_.cert.get()));
  const std::string rkey = dir.Write("responder.key", testing::KeyToPem(responder_.key.get()));
  const std::string index = dir.Write(
      "index.txt", "V\t351231235959Z\t\t" + Hex(X509_get0_serialNumber(leaf_.get())) + "\tunknown\t/CN=dev-1\n" +
                       "R\t351231235959Z\t240101000000Z,keyCompromise\t" +
                       Hex(X509_get0_serialNumber(other_leaf_.get())) + "\tunknown\t/CN=dev-2\n");
  std::string error;
  std::unique_ptr<OcspRequest> revoked_request =
      OcspRequest::Create(other_leaf_.get(), ca_.cert.get(), /*nonce=*/true, &error);
  ASSERT_TRUE(revoked_request) << error;

  struct Case {
    const OcspRequest* request;
    CertStatus status;
    int reason;
    int64_t revoked_at;
  };
  for (const Case& c : {Case{request_.get(), CertStatus::kGood, -1, 0},
                        Case{revoked_request.get(), CertStatus::kRevoked, 1, 1704067200}}) {
    const std::string req = dir.Write("req.der", c.request->der());
    const std::string resp = dir.File("resp.der");
    std::remove(resp.c_str());
    const std::string command = "openssl ocsp -index '" + index + "' -rsigner '" + rsigner + "' -rkey '" + rkey +
                                "' -CA '" + ca + "' -reqin '" + req + "' -respout '" + resp + "' -ndays 1 > '" +
                                dir.File("log") + "' 2>&1";
    ASSERT_EQ(std::system(command.c_str()), 0) << testing::ReadFile(dir.File("log"));
    const std::string der = testing::ReadFile(resp);
    ASSERT_FALSE(der.empty()) << testing::ReadFile(dir.File("log"));
    OcspAnswer answer;
    now_ = static_cast<int64_t>(std::time(nullptr));
    ASSERT_EQ(Verify(der, &answer, c.request), "");
    EXPECT_EQ(answer.status, c.status);
    EXPECT_EQ(answer.reason, c.reason);
    EXPECT_EQ(answer.revoked_at, c.revoked_at);
    EXPECT_NEAR(static_cast<double>(answer.this_update), static_cast<double>(now_), 120);
    EXPECT_NEAR(static_cast<double>(answer.next_update), static_cast<double>(now_ + 86400), 120);
  }
}

}  // namespace
}  // namespace certacl::revocation
