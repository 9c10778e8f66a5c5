// lint.cc: warnings for policies that load but are probably wrong.
#include "policy/lint.h"

#include <arpa/inet.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <map>
#include <string>

#include "policy/attributes.h"
#include "policy/identity.h"
#include "policy/topic.h"

namespace certacl {
namespace {

constexpr char kAttrMarker = '\x01';

class Linter {
 public:
  explicit Linter(const Policy& p) : p_(p) {}

  std::vector<Diagnostic> Run() {
    for (uint32_t i = 0; i < p_.roles.size(); ++i) CheckRole(i);
    for (uint32_t i = 0; i < p_.denies.size(); ++i) CheckDenyTemplates(i);
    CheckShadowing();
    CheckOverlaps();
    CheckRevocation();
    for (const auto& [kind, count] : overflow_) {
      out_.push_back({Diagnostic::Severity::kWarning, p_.file, 0, 0,
                      std::to_string(count) + " more warning(s) of the kind \"" + kind + "\" not shown"});
    }
    return std::move(out_);
  }

 private:
  void Warn(const std::string& kind, SourcePos pos, std::string message) {
    if (++per_kind_[kind] > kMaxLintWarningsPerKind) {
      ++overflow_[kind];
      return;
    }
    out_.push_back({Diagnostic::Severity::kWarning, p_.file, pos.line, pos.column, std::move(message)});
  }

  // [revocation] set up so that devices are refused for good.
  void CheckRevocation() {
    const RevocationConfig& rc = p_.revocation;
    if (rc.mode != RevocationConfig::Mode::kHardFail) return;
    const SourcePos at{rc.line, rc.column};
    if (rc.crl_files.empty()) {
      std::string sources;
      if (rc.crl_from_certificate) sources = "CRL distribution point";
      if (rc.ocsp == RevocationConfig::Ocsp::kFromCertificate) {
        sources += std::string(sources.empty() ? "" : " and no ") + "OCSP responder";
      }
      if (rc.ocsp != RevocationConfig::Ocsp::kUrl && !sources.empty()) {
        Warn("revocation", at,
             "[revocation] mode = \"hard-fail\" with only per-certificate sources: a device whose certificate names "
             "no " + sources + " is always refused (add crl_files or an OCSP URL, or use soft-fail)");
      }
    }
    for (uint32_t i = 0; i < p_.roles.size(); ++i) {
      for (uint32_t ca : p_.roles[i].when.cas) {
        bool listed = false;
        for (const RevocationConfig::Issuer& is : rc.issuers) {
          listed = listed || X509_cmp(is.cert.get(), p_.cas[ca].cert.get()) == 0;
        }
        if (!listed) {
          Warn("revocation", p_.roles[i].pos,
               p_.RoleLabel(i) + " trusts " + p_.cas[ca].description + " (" + p_.cas[ca].path +
                   "), which is not in revocation.issuers: its devices have no revocation status and hard-fail "
                   "refuses them");
        }
      }
    }
  }

  // Why attribute `a` can never have the value `v` (or prefix `v`), or "".
  static std::string Impossible(const std::string& a, const std::string& v, bool prefix) {
    std::string bad = CheckValue(v);
    if (!bad.empty()) return "certacl never admits such a value into an identity (" + bad + ")";
    auto has_upper = [&] {
      for (char c : v) if (c >= 'A' && c <= 'Z') return true;
      return false;
    };
    if ((a == "san.dns" || a == "cert.key") && has_upper())
      return a + " values are lowercase";
    if (a == "cert.sha256") {
      for (char c : v) if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return "cert.sha256 is lowercase hex";
      if (!prefix && v.size() != 64) return "cert.sha256 is 64 hex digits";
    }
    if (a == "cert.serial") {
      for (size_t i = 0; i < v.size(); ++i) {
        char c = v[i];
        if (i == 0 && c == '-') continue;
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'))) return "cert.serial is uppercase hex without separators";
      }
    }
    if ((a == "cert.not_after" || a == "cert.not_before") && !prefix &&
        (v.size() != 20 || v[10] != 'T' || v[19] != 'Z'))
      return a + " is written YYYY-MM-DDTHH:MM:SSZ";
    if (a == "san.ip" && !prefix) {
      unsigned char buf[16];
      char text[INET6_ADDRSTRLEN];
      int family = v.find(':') == std::string::npos ? AF_INET : AF_INET6;
      if (inet_pton(family, v.c_str(), buf) != 1 || !inet_ntop(family, buf, text, sizeof text) || v != text)
        return "san.ip is an address in canonical form (\"192.0.2.1\", \"2001:db8::1\")";
    }
    return "";
  }

  void CheckRole(uint32_t i) {
    const Role& r = p_.roles[i];
    const std::string label = p_.RoleLabel(i);
    bool never = false;
    for (const Condition& c : r.when.match) {
      auto kind = c.matcher.kind();
      if (kind != ValueMatcher::Kind::kExact && kind != ValueMatcher::Kind::kAny &&
          kind != ValueMatcher::Kind::kPrefix)
        continue;
      size_t impossible = 0;
      for (const std::string& v : c.matcher.literals()) {
        std::string why = Impossible(c.attribute, v, kind == ValueMatcher::Kind::kPrefix);
        if (why.empty()) continue;
        ++impossible;
        Warn("impossible value", c.pos,
             label + ": match on " + c.attribute + " value \"" + v + "\" can never hold: " + why);
      }
      if (impossible == c.matcher.literals().size()) never = true;
    }
    if (r.when.expires_within && r.when.not_expiring_within &&
        *r.when.not_expiring_within >= *r.when.expires_within) {
      never = true;
      Warn("impossible value", r.pos, label + ": not_expiring_within >= expires_within: no certificate has both");
    }
    if (never) Warn("role never matches", r.pos, label + " can never match any certificate");
    CheckTemplates(r.when, r.publish, label, "publish", false);
    CheckTemplates(r.when, r.subscribe, label, "subscribe", false);
  }

  void CheckDenyTemplates(uint32_t i) {
    const DenyEntry& d = p_.denies[i];
    const std::string label = p_.DenyLabel(i);
    CheckTemplates(d.when, d.publish, label, "publish", true);
    CheckTemplates(d.when, d.subscribe, label, "subscribe", true);
  }

  void CheckTemplates(const Conditions& when, const std::vector<TopicRule>& rules, const std::string& label,
                      const char* kind, bool is_deny) {
    for (size_t e = 0; e < rules.size(); ++e) {
      for (const Template::Piece& piece : rules[e].topic.pieces) {
        if (!piece.is_attribute || AlwaysPresent(piece.text)) continue;
        bool guaranteed = false;
        for (const Condition& c : when.match) guaranteed = guaranteed || c.attribute == piece.text;
        if (guaranteed) continue;
        Warn("template not guaranteed", rules[e].pos,
             label + " " + kind + "[" + std::to_string(e) + "] \"" + rules[e].topic.source + "\" uses ${" +
                 piece.text + "}, but the " + (is_deny ? "entry's" : "role's") + " match does not require " +
                 piece.text + ": " +
                 (is_deny ? "devices without it are denied every " + std::string(kind)
                          : "devices without it get nothing from this entry") +
                 " (add a match on " + piece.text + ")");
      }
    }
  }

  // The filter with every level that holds a template replaced by `+`.
  static std::string Generalize(const Template& t) {
    std::string s;
    for (const Template::Piece& p : t.pieces) s += p.is_attribute ? std::string(1, kAttrMarker) : p.text;
    std::string out;
    size_t start = 0;
    while (true) {
      size_t slash = s.find('/', start);
      std::string_view level = std::string_view(s).substr(start, slash == std::string::npos ? std::string::npos : slash - start);
      out += level.find(kAttrMarker) != std::string_view::npos ? std::string("+") : std::string(level);
      if (slash == std::string::npos) break;
      out += '/';
      start = slash + 1;
    }
    return out;
  }

  void CheckShadowing() {
    for (uint32_t d = 0; d < p_.denies.size(); ++d) {
      const DenyEntry& deny = p_.denies[d];
      if (!deny.when.empty()) continue;  // conditional: applies to some devices only
      for (uint32_t r = 0; r < p_.roles.size(); ++r) {
        Shadow(deny.publish, p_.roles[r].publish, d, r, "publish");
        Shadow(deny.subscribe, p_.roles[r].subscribe, d, r, "subscribe");
      }
    }
  }

  void Shadow(const std::vector<TopicRule>& denied, const std::vector<TopicRule>& allowed, uint32_t d,
              uint32_t r, const char* kind) {
    for (size_t de = 0; de < denied.size(); ++de) {
      if (denied[de].topic.has_attributes()) continue;
      for (size_t ae = 0; ae < allowed.size(); ++ae) {
        if (!topic::Covers(denied[de].topic.source, Generalize(allowed[ae].topic))) continue;
        Warn("shadowed by deny", allowed[ae].pos,
             p_.RoleLabel(r) + " " + kind + "[" + std::to_string(ae) + "] \"" + allowed[ae].topic.source +
                 "\" is always denied by " + p_.DenyLabel(d) + " " + kind + "[" + std::to_string(de) + "] \"" +
                 denied[de].topic.source + "\": it grants nothing");
      }
    }
  }

  struct EntryRef {
    uint32_t role;
    size_t entry;
    const TopicRule* rule;
  };

  void CheckOverlaps() {
    for (int k = 0; k < 2; ++k) {
      const char* kind = k == 0 ? "publish" : "subscribe";
      std::vector<EntryRef> all, wild;
      std::map<std::string, EntryRef> first;
      for (uint32_t r = 0; r < p_.roles.size(); ++r) {
        const auto& rules = k == 0 ? p_.roles[r].publish : p_.roles[r].subscribe;
        for (size_t e = 0; e < rules.size(); ++e) {
          EntryRef ref{r, e, &rules[e]};
          all.push_back(ref);
          if (topic::HasWildcard(rules[e].topic.source)) wild.push_back(ref);
          auto [it, inserted] = first.emplace(rules[e].topic.source, ref);
          if (!inserted && it->second.role != r && CanBothMatch(it->second.role, r)) {
            Overlap(it->second, ref, kind, "the same filter");
          }
        }
      }
      // Covering filters: only wildcard entries can cover others. Bounded so
      // that lint stays fast on policies with 100,000 roles.
      if (wild.size() * all.size() > 20'000'000) {
        out_.push_back({Diagnostic::Severity::kNote, p_.file, 0, 0,
                        std::string("overlapping ") + kind + " filters were checked for duplicates only: " +
                            std::to_string(wild.size()) + " wildcard entries x " + std::to_string(all.size()) +
                            " entries is too many to compare pairwise"});
        continue;
      }
      for (const EntryRef& w : wild) {
        for (const EntryRef& e : all) {
          if (e.role == w.role || e.rule->topic.source == w.rule->topic.source) continue;
          if (topic::Covers(w.rule->topic.source, e.rule->topic.source) && CanBothMatch(w.role, e.role)) {
            Overlap(w, e, kind, "a filter that covers it");
          }
        }
      }
    }
  }

  // False when no certificate can match both roles: exact conditions on
  // the same attribute with no value in common (different device kinds),
  // disjoint `ca` sets, or opposite expiry windows. Heuristic for lint only.
  bool CanBothMatch(uint32_t ra, uint32_t rb) const {
    const Conditions& a = p_.roles[ra].when;
    const Conditions& b = p_.roles[rb].when;
    auto exact = [](const Condition& c) {
      return c.matcher.kind() == ValueMatcher::Kind::kExact || c.matcher.kind() == ValueMatcher::Kind::kAny;
    };
    for (const Condition& ca : a.match) {
      if (!exact(ca)) continue;
      for (const Condition& cb : b.match) {
        if (cb.attribute != ca.attribute || !exact(cb)) continue;
        bool common = false;
        for (const std::string& v : ca.matcher.literals()) common = common || cb.matcher.Matches(v);
        if (!common) return false;
      }
    }
    if (!a.cas.empty() && !b.cas.empty()) {
      bool common = false;
      for (uint32_t x : a.cas) {
        for (uint32_t y : b.cas) {
          common = common || X509_cmp(p_.cas[x].cert.get(), p_.cas[y].cert.get()) == 0 ||
                   EVP_PKEY_eq(X509_get0_pubkey(p_.cas[x].cert.get()), X509_get0_pubkey(p_.cas[y].cert.get())) == 1;
        }
      }
      if (!common) return false;
    }
    auto disjoint_expiry = [](const Conditions& x, const Conditions& y) {
      return x.expires_within && y.not_expiring_within && *y.not_expiring_within >= *x.expires_within;
    };
    return !disjoint_expiry(a, b) && !disjoint_expiry(b, a);
  }

  void Overlap(const EntryRef& a, const EntryRef& b, const char* kind, const char* how) {
    Warn("overlapping roles", b.rule->pos,
         p_.RoleLabel(b.role) + " " + kind + "[" + std::to_string(b.entry) + "] \"" + b.rule->topic.source +
             "\" is also granted by " + p_.RoleLabel(a.role) + " " + kind + "[" + std::to_string(a.entry) +
             "] \"" + a.rule->topic.source + "\" (" + how + "): a device matching both roles gets it from either; "
             "consider granting it in one place");
  }

  const Policy& p_;
  std::vector<Diagnostic> out_;
  std::map<std::string, size_t> per_kind_;
  std::map<std::string, size_t> overflow_;
};

}  // namespace

std::vector<Diagnostic> LintPolicy(const Policy& policy) { return Linter(policy).Run(); }

}  // namespace certacl
