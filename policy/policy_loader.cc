// policy_loader.cc: TOML text -> compiled, immutable Policy.
//
// Every problem is reported with file:line:column and what was expected;
// the loader keeps going after an error so one run shows all of them, and
// returns no policy if there was any.
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <openssl/err.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <unordered_map>
#include <toml++/toml.h>

#include "policy/attributes.h"
#include "policy/policy.h"
#include "policy/sha256.h"
#include "policy/topic.h"

namespace certacl {
namespace {


const char* TypeName(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    default: return "nothing";
  }
}

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string Join(const std::vector<std::string_view>& items) {
  std::string s;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) s += ", ";
    s += items[i];
  }
  return s;
}

SourcePos Pos(const toml::source_region& r) { return {r.begin.line, r.begin.column}; }

class Loader {
 public:
  Loader(std::string file, std::string base_dir, std::vector<Diagnostic>* diags)
      : file_(std::move(file)), base_dir_(std::move(base_dir)), diags_(diags) {}

  std::shared_ptr<const Policy> Load(std::string_view text) {
    toml::table root;
    try {
      root = toml::parse(text, file_);
    } catch (const toml::parse_error& e) {
      Error(e.source(), std::string("TOML syntax error: ") + std::string(e.description()));
      return nullptr;
    }
    auto policy = std::make_shared<Policy>();
    policy->file = file_;
    policy_ = policy.get();
    LoadRoot(root);
    if (failed_) return nullptr;
    BuildRoleIndex();
    return policy;
  }

 private:
  // ---- diagnostics -------------------------------------------------------

  void Error(const toml::source_region& where, std::string message) {
    Error(Pos(where), std::move(message));
  }
  void Error(SourcePos where, std::string message) {
    failed_ = true;
    if (!diags_) return;
    Diagnostic d;
    d.severity = Diagnostic::Severity::kError;
    d.file = file_;
    d.line = where.line;
    d.column = where.column;
    d.message = std::move(message);
    diags_->push_back(std::move(d));
  }

  // Reports every key of `t` not in `allowed`, with a suggestion.
  void CheckKeys(const toml::table& t, std::string_view where,
                 const std::vector<std::string_view>& allowed) {
    for (auto&& [key, value] : t) {
      (void)value;
      std::string_view k = key.str();
      if (std::find(allowed.begin(), allowed.end(), k) != allowed.end()) continue;
      std::string msg = "unknown key \"" + std::string(k) + "\" in " + std::string(where);
      std::string_view best;
      size_t best_d = 3;
      for (std::string_view a : allowed) {
        size_t d = EditDistance(k, a);
        if (d < best_d) best_d = d, best = a;
      }
      if (!best.empty()) msg += " (did you mean \"" + std::string(best) + "\"?)";
      msg += "; expected one of: " + Join(allowed);
      Error(key.source(), msg);
    }
  }

  // ---- top level ---------------------------------------------------------

  void LoadRoot(const toml::table& root) {
    CheckKeys(root, "the top level", {"version", "connect", "role", "deny", "revocation", "enroll"});
    const toml::node* version = root.get("version");
    if (!version) {
      Error(SourcePos{1, 1}, "missing \"version = 1\" at the top of the policy");
    } else if (!version->is_integer() || version->as_integer()->get() != 1) {
      Error(version->source(), std::string("\"version\" must be the integer 1 (the only policy "
                                           "version so far), found ") + TypeName(*version) +
                                   (version->is_integer() ? " " + std::to_string(version->as_integer()->get()) : ""));
    }
    if (const toml::node* c = root.get("connect")) LoadConnect(*c);
    if (const toml::node* r = root.get("role")) {
      ForEachTable(*r, "role", [&](const toml::table& t) { LoadRole(t); });
    }
    if (const toml::node* d = root.get("deny")) {
      ForEachTable(*d, "deny", [&](const toml::table& t) { LoadDeny(t); });
    }
    if (const toml::node* r = root.get("revocation")) LoadRevocation(*r);
    if (const toml::node* e = root.get("enroll")) LoadEnroll(*e);
  }

  // ---- [enroll] ----------------------------------------------------------

  void LoadEnroll(const toml::node& n) {
    const toml::table* t = n.as_table();
    if (!t) {
      Error(n.source(), std::string("[enroll] must be a table, found ") + TypeName(n));
      return;
    }
    CheckKeys(*t, "[enroll]", {"prefix", "bridge_prefix", "identity", "renewal_window", "notice"});
    EnrollConfig& ec = policy_->enroll;
    ec.enabled = true;  // the table's presence turns renewal over MQTT on
    ec.line = Pos(n.source()).line;
    ec.column = Pos(n.source()).column;
    if (const toml::node* p = t->get("prefix")) {
      std::string why;
      const std::string v = p->is_string() ? p->as_string()->get() : "";
      if (!p->is_string()) {
        why = std::string("found ") + TypeName(*p);
      } else if (topic::IsValidName(v, &why) && v.back() == '/') {
        why = "it ends with '/'";
      }
      if (why.empty()) {
        ec.prefix = v;
      } else {
        Error(p->source(), "enroll.prefix must be a topic name such as \"$enroll\" (no wildcards, no trailing "
                           "'/'): " + why);
      }
    }
    ec.bridge_prefix = ec.prefix.front() == '$' ? kDefaultBridgePrefix : ec.prefix;
    if (const toml::node* b = t->get("bridge_prefix")) {
      std::string why;
      const std::string v = b->is_string() ? b->as_string()->get() : "";
      if (!b->is_string()) {
        why = std::string("found ") + TypeName(*b);
      } else if (topic::IsValidName(v, &why) && v.back() == '/') {
        why = "it ends with '/'";
      } else if (why.empty() && v != ec.prefix && v.front() == '$') {
        why = "Mosquitto 2.0 cannot share a '$' topic between bridges; use a plain topic, or the prefix itself "
              "(no re-filing, one bridge)";
      } else if (why.empty() && v != ec.prefix && (TopicUnder(ec.prefix, v) || TopicUnder(v, ec.prefix))) {
        why = "it overlaps enroll.prefix \"" + ec.prefix + "\"";
      }
      if (why.empty()) {
        ec.bridge_prefix = v;
      } else {
        Error(b->source(), "enroll.bridge_prefix must be a topic name such as \"certacl/enroll-requests\": " + why);
      }
    }
    if (const toml::node* id = t->get("identity")) {
      if (!id->is_string()) {
        Error(id->source(), std::string("enroll.identity must be a string template such as \"${subject.CN}\", "
                                        "found ") + TypeName(*id));
      } else if (ParseTemplate(id->as_string()->get(), id->source(), &ec.identity)) {
        std::string why = IdentityTemplateProblem(ec.identity);
        if (!why.empty()) Error(id->source(), "enroll.identity \"" + ec.identity.source + "\" " + why);
      }
    } else if (policy_->client_id) {
      ec.identity = *policy_->client_id;
      std::string why = IdentityTemplateProblem(ec.identity);
      if (!why.empty()) {
        Error(n.source(), "[enroll] identity defaults to connect.client_id \"" + ec.identity.source + "\", which " +
                              why + ": set enroll.identity, e.g. identity = \"${subject.CN}\"");
      }
    } else {
      ec.identity.source = "${subject.CN}";
      ec.identity.pieces = {{true, "subject.CN"}};
    }
    if (const toml::node* w = t->get("renewal_window")) LoadRenewalWindow(*w, &ec);
    ReadBool(*t, "notice", "enroll.notice", &ec.notice);
  }

  // Why `t` cannot give enrollment identities (a single topic level), or "".
  static std::string IdentityTemplateProblem(const Template& t) {
    bool any_attribute = false;
    for (const Template::Piece& p : t.pieces) {
      if (p.is_attribute) {
        any_attribute = true;
        continue;
      }
      for (char c : p.text) {
        if (c == '/' || c == '+' || c == '#') {
          return std::string("has '") + c + "' in its literal text: an identity is one topic level";
        }
        if (c == '\0') return "has a NUL byte in its literal text";
      }
    }
    if (!any_attribute) return "names no ${attribute}: every device would have the same identity";
    return "";
  }

  void LoadRenewalWindow(const toml::node& n, EnrollConfig* ec) {
    const std::string v = n.is_string() ? n.as_string()->get() : "";
    if (!v.empty() && v.back() == '%') {
      // "N%" or "N.NNN%": 0 < N <= 100, at most 6 decimals, kept exact as a fraction.
      const std::string_view digits = std::string_view(v).substr(0, v.size() - 1);
      const size_t dot = digits.find('.');
      const std::string_view whole = digits.substr(0, dot);
      const std::string_view decimals = dot == std::string_view::npos ? std::string_view() : digits.substr(dot + 1);
      bool ok = !whole.empty() && whole.size() <= 3 && decimals.size() <= 6 &&
                (dot == std::string_view::npos || !decimals.empty());
      int64_t num = 0;
      int64_t den = 100;
      for (char c : whole) {
        ok = ok && c >= '0' && c <= '9';
        num = num * 10 + (c - '0');
      }
      for (char c : decimals) {
        ok = ok && c >= '0' && c <= '9';
        num = num * 10 + (c - '0');
        den *= 10;
      }
      if (ok && num > 0 && num <= den) {
        ec->window_num = num;
        ec->window_den = den;
        ec->window_seconds = -1;
        return;
      }
    } else if (std::optional<int64_t> d = ParseDuration(v); d && *d > 0) {
      ec->window_seconds = *d;
      return;
    }
    Error(n.source(), "enroll.renewal_window must be a share of the certificate's lifetime, more than 0% and at "
                      "most 100% (such as \"33%\" or \"12.5%\"), or a duration such as \"30d\"");
  }

  // ---- [revocation] ------------------------------------------------------

  void LoadRevocation(const toml::node& n) {
    const toml::table* t = n.as_table();
    if (!t) {
      Error(n.source(), std::string("[revocation] must be a table, found ") + TypeName(n));
      return;
    }
    CheckKeys(*t, "[revocation]",
              {"mode", "crl_files", "crl_from_certificate", "crl_cache_dir", "ocsp", "issuers", "stale", "stale_grace",
               "crl_refresh", "crl_file_poll", "ocsp_max_age", "ocsp_timeout", "fetch_timeout", "clock_skew",
               "failure_backoff", "crl_max_size_mb", "ocsp_nonce", "disconnect_expired"});
    static const toml::array kEmptyArray;
    const size_t errors_before = diags_ ? diags_->size() : 0;
    RevocationConfig& rc = policy_->revocation;
    rc.line = Pos(n.source()).line;
    rc.column = Pos(n.source()).column;
    rc.mode = RevocationConfig::Mode::kHardFail;  // the table's presence turns checking on
    if (const toml::node* m = t->get("mode")) {
      const std::string v = m->is_string() ? m->as_string()->get() : "";
      if (v == "hard-fail") {
        rc.mode = RevocationConfig::Mode::kHardFail;
      } else if (v == "soft-fail") {
        rc.mode = RevocationConfig::Mode::kSoftFail;
      } else if (v == "off") {
        rc.mode = RevocationConfig::Mode::kOff;
      } else {
        Error(m->source(), "revocation.mode must be \"hard-fail\", \"soft-fail\" or \"off\"");
      }
    }
    if (const toml::node* f = t->get("crl_files")) {
      const toml::array* arr = f->as_array();
      if (!arr) Error(f->source(), std::string("revocation.crl_files must be an array of paths, found ") + TypeName(*f));
      for (const toml::node& item : arr ? *arr : kEmptyArray) {
        if (!item.is_string() || item.as_string()->get().empty()) {
          Error(item.source(), "revocation.crl_files entries must be file or directory names");
          continue;
        }
        std::filesystem::path path = Resolve(item.as_string()->get());
        std::error_code ec;
        if (!std::filesystem::exists(path, ec)) {
          Error(item.source(), "revocation.crl_files: \"" + path.string() +
                                   "\" does not exist; relative paths are resolved against the policy file's directory");
          continue;
        }
        rc.crl_files.push_back(path.string());
      }
    }
    ReadBool(*t, "crl_from_certificate", "revocation.crl_from_certificate", &rc.crl_from_certificate);
    if (const toml::node* d = t->get("crl_cache_dir")) {
      std::error_code ec;
      const std::filesystem::path path = d->is_string() ? Resolve(d->as_string()->get()) : std::filesystem::path();
      if (!d->is_string() || d->as_string()->get().empty()) {
        Error(d->source(), "revocation.crl_cache_dir must be a directory name");
      } else if (!std::filesystem::is_directory(path, ec)) {
        Error(d->source(), "revocation.crl_cache_dir: \"" + path.string() +
                               "\" is not a directory (create it, writable by the broker's user)");
      } else {
        rc.crl_cache_dir = path.string();
      }
    }
    ReadBool(*t, "ocsp_nonce", "revocation.ocsp_nonce", &rc.ocsp_nonce);
    ReadBool(*t, "disconnect_expired", "revocation.disconnect_expired", &rc.disconnect_expired);
    if (const toml::node* o = t->get("ocsp")) {
      const std::string v = o->is_string() ? o->as_string()->get() : "";
      if (v == "off") {
        rc.ocsp = RevocationConfig::Ocsp::kOff;
      } else if (v == "from-certificate") {
        rc.ocsp = RevocationConfig::Ocsp::kFromCertificate;
      } else if (v.rfind("http://", 0) == 0 && v.size() > 7) {
        rc.ocsp = RevocationConfig::Ocsp::kUrl;
        rc.ocsp_url = v;
      } else {
        Error(o->source(), "revocation.ocsp must be \"off\", \"from-certificate\" or a responder URL "
                           "such as \"http://ocsp.example.com/\" (https is not supported: OCSP responses are signed)");
      }
    }
    if (const toml::node* s = t->get("stale")) {
      const std::string v = s->is_string() ? s->as_string()->get() : "";
      if (v == "deny") {
        rc.stale = RevocationConfig::Stale::kDeny;
      } else if (v == "allow") {
        rc.stale = RevocationConfig::Stale::kAllow;
      } else {
        Error(s->source(), "revocation.stale must be \"deny\" or \"allow\"");
      }
    }
    struct DurationKey {
      const char* key;
      int64_t* out;
      int64_t min;
    };
    for (const DurationKey& d : {DurationKey{"stale_grace", &rc.stale_grace_s, 0},
                                 DurationKey{"crl_refresh", &rc.crl_refresh_s, 1},
                                 DurationKey{"crl_file_poll", &rc.crl_file_poll_s, 1},
                                 DurationKey{"ocsp_max_age", &rc.ocsp_max_age_s, 1},
                                 DurationKey{"ocsp_timeout", &rc.ocsp_timeout_s, 1},
                                 DurationKey{"fetch_timeout", &rc.fetch_timeout_s, 1},
                                 DurationKey{"clock_skew", &rc.clock_skew_s, 0},
                                 DurationKey{"failure_backoff", &rc.failure_backoff_s, 1}}) {
      std::optional<int64_t> v;
      ReadDuration(*t, d.key, "revocation", &v);
      if (!v) continue;
      if (*v < d.min) {
        Error(t->get(d.key)->source(), std::string("revocation.") + d.key + " must be at least " +
                                            std::to_string(d.min) + "s");
        continue;
      }
      *d.out = *v;
    }
    if (rc.crl_file_poll_s > 10) {
      Error(t->get("crl_file_poll")->source(), "revocation.crl_file_poll must be at most 10s");
    }
    if (const toml::node* m = t->get("crl_max_size_mb")) {
      if (!m->is_integer() || m->as_integer()->get() < 1 || m->as_integer()->get() > 4096) {
        Error(m->source(), "revocation.crl_max_size_mb must be an integer from 1 to 4096");
      } else {
        rc.crl_max_bytes = static_cast<size_t>(m->as_integer()->get()) << 20;
      }
    }
    if (const toml::node* is = t->get("issuers")) {
      const toml::array* arr = is->as_array();
      if (!arr) Error(is->source(), std::string("revocation.issuers must be an array of PEM files, found ") + TypeName(*is));
      for (const toml::node& item : arr ? *arr : kEmptyArray) {
        if (!item.is_string()) {
          Error(item.source(), "revocation.issuers entries must be PEM file names");
          continue;
        }
        for (uint32_t index : LoadCaFile(item.as_string()->get(), item.source(), "revocation.issuers")) {
          AddIssuer(index);
        }
      }
    } else {
      for (uint32_t i = 0; i < policy_->cas.size(); ++i) AddIssuer(i);
    }
    if (!rc.enabled() || (diags_ && diags_->size() != errors_before)) return;
    const SourcePos at = Pos(n.source());
    if (rc.issuers.empty()) {
      Error(at, "[revocation] needs the issuing CA certificates, to verify CRLs and to ask OCSP: set "
                "issuers = [\"issuing-ca.pem\"] (or name them with `ca` in a role)");
    }
    if (rc.crl_files.empty() && !rc.crl_from_certificate && rc.ocsp == RevocationConfig::Ocsp::kOff) {
      Error(at, "[revocation] has no source of revocation data: set crl_files, crl_from_certificate = true "
                "or ocsp (or mode = \"off\")");
    }
  }

  void AddIssuer(uint32_t ca_index) {
    const TrustAnchor& a = policy_->cas[ca_index];
    for (const RevocationConfig::Issuer& i : policy_->revocation.issuers) {
      if (X509_cmp(i.cert.get(), a.cert.get()) == 0) return;
    }
    X509_up_ref(a.cert.get());
    policy_->revocation.issuers.push_back({a.path, X509Ptr(a.cert.get()), a.description});
  }

  std::filesystem::path Resolve(const std::string& written) const {
    std::filesystem::path path(written);
    if (path.is_relative() && !base_dir_.empty()) path = std::filesystem::path(base_dir_) / path;
    return path;
  }

  template <typename F>
  void ForEachTable(const toml::node& n, std::string_view name, F&& f) {
    const toml::array* arr = n.as_array();
    if (!arr) {
      Error(n.source(), "\"" + std::string(name) + "\" must be an array of tables, written [[" +
                            std::string(name) + "]], found " + TypeName(n));
      return;
    }
    for (const toml::node& el : *arr) {
      if (const toml::table* t = el.as_table()) {
        f(*t);
      } else {
        Error(el.source(), "each [[" + std::string(name) + "]] entry must be a table, found " +
                               TypeName(el));
      }
    }
  }

  void LoadConnect(const toml::node& n) {
    const toml::table* t = n.as_table();
    if (!t) {
      Error(n.source(), std::string("[connect] must be a table, found ") + TypeName(n));
      return;
    }
    CheckKeys(*t, "[connect]", {"client_id", "require_role", "allow_malformed"});
    if (const toml::node* id = t->get("client_id")) {
      if (!id->is_string()) {
        Error(id->source(), std::string("connect.client_id must be a string template such as "
                                        "\"${subject.CN}\", found ") + TypeName(*id));
      } else {
        Template tmpl;
        if (ParseTemplate(id->as_string()->get(), id->source(), &tmpl)) {
          if (tmpl.pieces.empty()) {
            Error(id->source(), "connect.client_id is empty: remove it to accept any client id");
          } else {
            policy_->client_id = std::move(tmpl);
            policy_->client_id_pos = Pos(id->source());
          }
        }
      }
    }
    ReadBool(*t, "require_role", "connect.require_role", &policy_->require_role);
    ReadBool(*t, "allow_malformed", "connect.allow_malformed", &policy_->allow_malformed);
  }

  void ReadBool(const toml::table& t, std::string_view key, std::string_view what, bool* out) {
    const toml::node* n = t.get(key);
    if (!n) return;
    if (!n->is_boolean()) {
      Error(n->source(), std::string(what) + " must be true or false, found " + TypeName(*n));
      return;
    }
    *out = n->as_boolean()->get();
  }

  // ---- roles and denies --------------------------------------------------

  void LoadRole(const toml::table& t) {
    Role role;
    role.pos = Pos(t.source());
    const std::string label = "[[role]] #" + std::to_string(policy_->roles.size());
    CheckKeys(t, label, {"name", "match", "ca", "expires_within", "not_expiring_within",
                         "max_qos", "retain", "publish", "subscribe"});
    const toml::node* name = t.get("name");
    if (!name) {
      Error(t.source(), label + " has no \"name\": every role needs a unique name");
    } else if (!name->is_string() || name->as_string()->get().empty()) {
      Error(name->source(), label + ": \"name\" must be a non-empty string");
    } else {
      role.name = name->as_string()->get();
      auto [seen, inserted] = role_lines_.emplace(role.name, role.pos.line);
      if (!inserted) {
        Error(name->source(), "duplicate role name \"" + role.name + "\" (first defined at line " +
                                  std::to_string(seen->second) + "): role names must be unique");
      }
    }
    const std::string where = role.name.empty() ? label : "role \"" + role.name + "\"";
    LoadConditions(t, where, &role.when);
    uint8_t max_qos = 2;
    bool retain = true;
    if (const toml::node* q = t.get("max_qos")) ReadQos(*q, where + ".max_qos", &max_qos);
    ReadBool(t, "retain", where + ".retain", &retain);
    LoadTopics(t, "publish", where, /*is_publish=*/true, max_qos, retain, &role.publish);
    LoadTopics(t, "subscribe", where, /*is_publish=*/false, 2, true, &role.subscribe);
    policy_->roles.push_back(std::move(role));
  }

  void LoadDeny(const toml::table& t) {
    DenyEntry deny;
    deny.pos = Pos(t.source());
    const std::string label = "[[deny]] #" + std::to_string(policy_->denies.size());
    CheckKeys(t, label, {"name", "match", "ca", "expires_within", "not_expiring_within",
                         "connect", "publish", "subscribe"});
    if (const toml::node* name = t.get("name")) {
      if (!name->is_string()) {
        Error(name->source(), label + ": \"name\" must be a string, found " + TypeName(*name));
      } else {
        deny.name = name->as_string()->get();
      }
    }
    const std::string where = deny.name.empty() ? label : "deny \"" + deny.name + "\"";
    LoadConditions(t, where, &deny.when);
    ReadBool(t, "connect", where + ".connect", &deny.connect);
    LoadTopics(t, "publish", where, true, 2, true, &deny.publish);
    LoadTopics(t, "subscribe", where, false, 2, true, &deny.subscribe);
    if (!deny.connect && deny.publish.empty() && deny.subscribe.empty()) {
      Error(t.source(), where + " denies nothing: give it publish, subscribe or connect = true");
    }
    policy_->denies.push_back(std::move(deny));
  }

  void ReadQos(const toml::node& n, const std::string& what, uint8_t* out) {
    if (!n.is_integer() || n.as_integer()->get() < 0 || n.as_integer()->get() > 2) {
      Error(n.source(), what + " must be 0, 1 or 2");
      return;
    }
    *out = static_cast<uint8_t>(n.as_integer()->get());
  }

  void LoadConditions(const toml::table& t, const std::string& where, Conditions* when) {
    if (const toml::node* m = t.get("match")) {
      if (const toml::table* mt = m->as_table()) {
        // toml++ iterates keys sorted; report and keep them in file order.
        std::vector<std::pair<const toml::key*, const toml::node*>> entries;
        for (auto&& [key, value] : *mt) entries.emplace_back(&key, &value);
        std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
          const auto& pa = a.first->source().begin;
          const auto& pb = b.first->source().begin;
          return pa.line != pb.line ? pa.line < pb.line : pa.column < pb.column;
        });
        for (const auto& [key, value] : entries) LoadCondition(*key, *value, where, when);
      } else {
        Error(m->source(), where + ".match must be a table of attribute = matcher, e.g. "
                                   "match.\"subject.O\" = \"Acme\"; found " + TypeName(*m));
      }
    }
    if (const toml::node* ca = t.get("ca")) LoadCas(*ca, where, when);
    ReadDuration(t, "expires_within", where, &when->expires_within);
    ReadDuration(t, "not_expiring_within", where, &when->not_expiring_within);
  }

  void ReadDuration(const toml::table& t, std::string_view key, const std::string& where,
                    std::optional<int64_t>* out) {
    const toml::node* n = t.get(key);
    if (!n) return;
    std::optional<int64_t> d;
    if (n->is_integer() && n->as_integer()->get() >= 0) d = n->as_integer()->get();
    if (n->is_string()) d = ParseDuration(n->as_string()->get());
    if (!d) {
      Error(n->source(), where + "." + std::string(key) +
                             " must be a duration such as \"30d\", \"12h\", \"90m\" or \"3600s\"");
      return;
    }
    *out = d;
  }

  void LoadCondition(const toml::key& key, const toml::node& value, const std::string& where,
                     Conditions* when) {
    std::string why;
    std::optional<std::string> attr = CanonicalAttribute(key.str(), &why);
    if (!attr) {
      Error(key.source(), where + ".match: " + why);
      return;
    }
    policy_->computed |= ComputedBit(*attr);
    for (const Condition& c : when->match) {
      if (c.attribute == *attr) {
        Error(key.source(), where + ".match names " + *attr + " twice (line " +
                                std::to_string(c.pos.line) + "): combine them with { any = [...] } or a regex");
        return;
      }
    }
    Condition cond;
    cond.attribute = *attr;
    cond.pos = Pos(key.source());
    const std::string what = where + ".match.\"" + std::string(key.str()) + "\"";
    if (value.is_string()) {
      cond.matcher = ValueMatcher::Exact(value.as_string()->get());
      when->match.push_back(std::move(cond));
      return;
    }
    const toml::table* mt = value.as_table();
    if (!mt || mt->size() != 1) {
      Error(value.source(), what + " must be a string or a table with exactly one of "
                                   "glob, regex, any, prefix; found " +
                                (mt ? std::to_string(mt->size()) + " keys" : TypeName(value)));
      return;
    }
    const toml::key* mkey_ptr = nullptr;
    const toml::node* mval_ptr = nullptr;
    for (auto&& [k, v] : *mt) mkey_ptr = &k, mval_ptr = &v;
    const toml::key& mkey = *mkey_ptr;
    const toml::node& mval = *mval_ptr;
    std::string_view kind = mkey.str();
    if (kind == "any") {
      const toml::array* arr = mval.as_array();
      std::vector<std::string> values;
      bool ok = arr != nullptr && !arr->empty();
      if (arr) {
        for (const toml::node& el : *arr) {
          if (!el.is_string()) ok = false;
          else values.push_back(el.as_string()->get());
        }
      }
      if (!ok) {
        Error(mval.source(), what + ": any must be a non-empty array of strings");
        return;
      }
      cond.matcher = ValueMatcher::Any(std::move(values));
    } else if (kind == "glob" || kind == "regex" || kind == "prefix") {
      if (!mval.is_string()) {
        Error(mval.source(), what + ": " + std::string(kind) + " must be a string, found " + TypeName(mval));
        return;
      }
      std::string pattern = mval.as_string()->get();
      std::string err;
      bool ok = true;
      if (kind == "glob") ok = ValueMatcher::Glob(pattern, &cond.matcher, &err);
      if (kind == "regex") ok = ValueMatcher::Regex(pattern, &cond.matcher, &err);
      if (kind == "prefix") cond.matcher = ValueMatcher::Prefix(pattern);
      if (!ok) {
        Error(mval.source(), what + ": " + err);
        return;
      }
    } else {
      Error(mkey.source(), what + ": unknown matcher \"" + std::string(kind) +
                               "\"; expected glob, regex, any or prefix (or a plain string for an exact match)");
      return;
    }
    when->match.push_back(std::move(cond));
  }

  void LoadCas(const toml::node& n, const std::string& where, Conditions* when) {
    std::vector<const toml::node*> items;
    if (n.is_string()) {
      items.push_back(&n);
    } else if (const toml::array* arr = n.as_array(); arr && !arr->empty()) {
      for (const toml::node& el : *arr) items.push_back(&el);
    } else {
      Error(n.source(), where + ".ca must be a CA certificate file (\"ca.pem\") or a non-empty list of them");
      return;
    }
    for (const toml::node* item : items) {
      if (!item->is_string()) {
        Error(item->source(), where + ".ca entries must be file names, found " + TypeName(*item));
        continue;
      }
      for (uint32_t index : LoadCaFile(item->as_string()->get(), item->source(), where)) {
        if (std::find(when->cas.begin(), when->cas.end(), index) == when->cas.end()) when->cas.push_back(index);
      }
      // A `ca` check is cached by the certificate's digest (SignatureCache).
      policy_->computed |= kComputedSha256;
    }
  }

  // Loads every certificate in a PEM file as a trust anchor (a bundle gives
  // several: `ca` holds if any of them signed the device certificate) and
  // returns their indices. Each file is read once per policy.
  std::vector<uint32_t> LoadCaFile(const std::string& written, const toml::source_region& at,
                                     const std::string& where) {
    auto it = ca_files_.find(written);
    if (it != ca_files_.end()) return it->second;
    std::filesystem::path path(written);
    if (path.is_relative() && !base_dir_.empty()) path = std::filesystem::path(base_dir_) / path;
    BioPtr bio(BIO_new_file(path.c_str(), "r"));
    if (!bio) {
      Error(at, where + ".ca: cannot read \"" + path.string() + "\" (" + std::strerror(errno) +
                    "); relative paths are resolved against the policy file's directory");
      return {};
    }
    std::vector<uint32_t> indices;
    while (X509* raw = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
      TrustAnchor anchor;
      anchor.path = written;
      anchor.cert.reset(raw);
      if (const ASN1_OCTET_STRING* ski = X509_get0_subject_key_id(raw)) {
        anchor.subject_key_id.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(ski)),
                                     static_cast<size_t>(ASN1_STRING_length(ski)));
      }
      if (EVP_PKEY* key = X509_get0_pubkey(raw)) {
        std::array<unsigned char, 32> md;
        if (Sha256(ToDer<EVP_PKEY, i2d_PUBKEY>(key), &md)) {
          anchor.key_sha256.assign(reinterpret_cast<const char*>(md.data()), md.size());
        }
      }
      char buf[512];
      X509_NAME_oneline(X509_get_subject_name(raw), buf, sizeof buf);
      anchor.description = buf;
      indices.push_back(static_cast<uint32_t>(policy_->cas.size()));
      policy_->cas.push_back(std::move(anchor));
    }
    ERR_clear_error();
    if (indices.empty()) {
      Error(at, where + ".ca: \"" + path.string() + "\" holds no PEM certificate");
      return {};
    }
    ca_files_[written] = indices;
    return indices;
  }

  void LoadTopics(const toml::table& t, std::string_view key, const std::string& where,
                  bool is_publish, uint8_t default_qos, bool default_retain,
                  std::vector<TopicRule>* out) {
    const toml::node* n = t.get(key);
    if (!n) return;
    const toml::array* arr = n->as_array();
    if (!arr) {
      Error(n->source(), where + "." + std::string(key) + " must be an array of topic filters, found " +
                             TypeName(*n));
      return;
    }
    size_t index = 0;
    for (const toml::node& el : *arr) {
      const std::string what = where + "." + std::string(key) + "[" + std::to_string(index++) + "]";
      TopicRule rule;
      rule.max_qos = default_qos;
      rule.retain = default_retain;
      rule.pos = Pos(el.source());
      const toml::node* topic_node = &el;
      if (const toml::table* et = el.as_table()) {
        if (is_publish) {
          CheckKeys(*et, what, {"topic", "max_qos", "retain"});
          if (const toml::node* q = et->get("max_qos")) ReadQos(*q, what + ".max_qos", &rule.max_qos);
          ReadBool(*et, "retain", what + ".retain", &rule.retain);
        } else {
          CheckKeys(*et, what, {"topic"});
        }
        topic_node = et->get("topic");
        if (!topic_node) {
          Error(el.source(), what + " has no \"topic\"");
          continue;
        }
      }
      if (!topic_node->is_string()) {
        Error(topic_node->source(), what + " must be a topic filter string" +
                                        std::string(is_publish ? " or { topic = \"...\", max_qos = 1, retain = false }" : "") +
                                        ", found " + TypeName(*topic_node));
        continue;
      }
      if (!ParseTemplate(topic_node->as_string()->get(), topic_node->source(), &rule.topic)) continue;
      // Validate the filter with every attribute replaced by a plain value:
      // what a device substitutes later can never contain '/', '+' or '#'.
      std::string probe;
      for (const Template::Piece& p : rule.topic.pieces) probe += p.is_attribute ? "x" : p.text;
      std::string why;
      if (!topic::IsValidFilter(probe, &why)) {
        Error(topic_node->source(), what + " \"" + rule.topic.source + "\" is not a valid MQTT topic filter: " + why);
        continue;
      }
      if (probe.substr(0, 7) == "$share/") {
        Error(topic_node->source(), what + " \"" + rule.topic.source +
                                        "\": write the filter without $share/<group>/ (shared subscriptions "
                                        "are checked as the filter they share)");
        continue;
      }
      out->push_back(std::move(rule));
    }
  }

  // "meters/${subject.L}/x" -> pieces. `$` not followed by `{` is literal.
  bool ParseTemplate(const std::string& text, const toml::source_region& at, Template* out) {
    out->source = text;
    out->pieces.clear();
    std::string literal;
    size_t i = 0;
    while (i < text.size()) {
      if (text.compare(i, 2, "${") != 0) {
        literal += text[i++];
        continue;
      }
      size_t close = text.find('}', i + 2);
      if (close == std::string::npos) {
        Error(at, "template \"" + text + "\": \"${\" at offset " + std::to_string(i) +
                      " has no closing \"}\"");
        return false;
      }
      std::string why;
      std::optional<std::string> attr = CanonicalAttribute(std::string_view(text).substr(i + 2, close - i - 2), &why);
      if (!attr) {
        Error(at, "template \"" + text + "\": " + why);
        return false;
      }
      policy_->computed |= ComputedBit(*attr);
      if (!literal.empty()) out->pieces.push_back({false, std::move(literal)});
      literal.clear();
      out->pieces.push_back({true, *attr});
      i = close + 1;
    }
    if (!literal.empty()) out->pieces.push_back({false, std::move(literal)});
    return true;
  }

  // ---- role index --------------------------------------------------------

  void BuildRoleIndex() {
    // How many distinct exact values each attribute has across roles: the
    // more, the more selective an index on it.
    std::map<std::string, std::set<std::string>> distinct;
    for (const Role& r : policy_->roles) {
      for (const Condition& c : r.when.match) {
        if (c.matcher.kind() != ValueMatcher::Kind::kExact && c.matcher.kind() != ValueMatcher::Kind::kAny) continue;
        auto& s = distinct[c.attribute];
        for (const std::string& v : c.matcher.literals()) s.insert(v);
      }
    }
    std::map<std::string, size_t> index_of;
    for (uint32_t i = 0; i < policy_->roles.size(); ++i) {
      const Role& r = policy_->roles[i];
      const Condition* best = nullptr;
      for (const Condition& c : r.when.match) {
        if (c.matcher.kind() != ValueMatcher::Kind::kExact && c.matcher.kind() != ValueMatcher::Kind::kAny) continue;
        if (!best || distinct[c.attribute].size() > distinct[best->attribute].size()) best = &c;
      }
      if (!best) {
        policy_->unindexed_roles.push_back(i);
        continue;
      }
      auto [it, inserted] = index_of.emplace(best->attribute, policy_->role_index.size());
      if (inserted) policy_->role_index.push_back({best->attribute, {}});
      auto& by_value = policy_->role_index[it->second].roles_by_value;
      for (const std::string& v : best->matcher.literals()) {
        auto& list = by_value[v];
        if (list.empty() || list.back() != i) list.push_back(i);
      }
    }
  }

  std::string file_;
  std::string base_dir_;
  std::vector<Diagnostic>* diags_;
  Policy* policy_ = nullptr;
  bool failed_ = false;
  std::map<std::string, std::vector<uint32_t>> ca_files_;
  std::unordered_map<std::string, uint32_t> role_lines_;  // role name -> line, for duplicates
};

}  // namespace

std::string Diagnostic::ToString() const {
  std::string s = file;
  if (line) s += ":" + std::to_string(line) + ":" + std::to_string(column);
  s += severity == Severity::kError ? ": error: " : severity == Severity::kWarning ? ": warning: " : ": note: ";
  return s + message;
}

std::string Policy::RoleLabel(uint32_t role) const {
  return "role '" + roles[role].name + "' (#" + std::to_string(role) + ")";
}

std::string Policy::DenyLabel(uint32_t deny) const {
  if (denies[deny].name.empty()) return "deny #" + std::to_string(deny);
  return "deny '" + denies[deny].name + "' (#" + std::to_string(deny) + ")";
}

const char* RevocationModeName(RevocationConfig::Mode mode) {
  switch (mode) {
    case RevocationConfig::Mode::kOff: return "off";
    case RevocationConfig::Mode::kHardFail: return "hard-fail";
    case RevocationConfig::Mode::kSoftFail: return "soft-fail";
  }
  return "off";
}

std::optional<int64_t> ParseDuration(std::string_view text) {
  if (text.empty()) return std::nullopt;
  int64_t unit = 1;
  switch (text.back()) {
    case 's': unit = 1; text.remove_suffix(1); break;
    case 'm': unit = 60; text.remove_suffix(1); break;
    case 'h': unit = 3600; text.remove_suffix(1); break;
    case 'd': unit = 86400; text.remove_suffix(1); break;
    default: break;
  }
  if (text.empty() || text.size() > 12) return std::nullopt;
  int64_t n = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + (c - '0');
  }
  return n * unit;
}

std::shared_ptr<const Policy> LoadPolicyString(std::string_view text, const std::string& name,
                                               const std::string& base_dir,
                                               std::vector<Diagnostic>* diagnostics) {
  Loader loader(name, base_dir, diagnostics);
  return loader.Load(text);
}

std::shared_ptr<const Policy> LoadPolicyFile(const std::string& path,
                                             std::vector<Diagnostic>* diagnostics) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (diagnostics) {
      diagnostics->push_back({Diagnostic::Severity::kError, path, 0, 0,
                              std::string("cannot read the policy file: ") + std::strerror(errno)});
    }
    return nullptr;
  }
  std::stringstream buf;
  buf << in.rdbuf();
  std::string base = std::filesystem::path(path).parent_path().string();
  return LoadPolicyString(buf.str(), path, base, diagnostics);
}

}  // namespace certacl
