// certacl: the command-line tool for policy authors.
//
//   certacl lint POLICY                 exit 0 clean, 1 problems, 2 unreadable
//   certacl explain --policy P --cert C [--client-id ID]
//           (--connect | --publish T | --subscribe F | --read T)
//           [--qos N] [--retain] [--now TIME] [--json]
//                                       exit 0 allow, 1 deny, 2 error
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "policy/identity.h"
#include "policy/lint.h"
#include "policy/policy.h"
#include "policy/session.h"
#include "policy/topic.h"

namespace certacl {
namespace {

constexpr int kExitAllow = 0, kExitDeny = 1, kExitError = 2;
constexpr int kExitClean = 0, kExitProblems = 1, kExitUnreadable = 2;

const char* kMainHelp =
    "certacl: check and explain certacl policies.\n"
    "\n"
    "usage:\n"
    "  certacl lint POLICY\n"
    "      Load POLICY and report errors and likely mistakes.\n"
    "  certacl explain --policy POLICY --cert PEM [--client-id ID]\n"
    "                  (--connect | --publish TOPIC | --subscribe FILTER | --read TOPIC)\n"
    "                  [--qos N] [--retain] [--now TIME] [--json]\n"
    "      Show what POLICY decides for the device holding certificate PEM.\n"
    "  certacl help [lint|explain]\n"
    "\n"
    "The policy language is described in docs/policy.md.\n";

const char* kLintHelp =
    "usage: certacl lint POLICY\n"
    "\n"
    "Loads POLICY the way the broker plugin does and prints every error (with\n"
    "file:line:column and what was expected) and every warning about things\n"
    "policy authors commonly get wrong:\n"
    "  - a topic template naming an attribute the role's match does not require,\n"
    "  - a role that can never match,\n"
    "  - an allowed filter that an unconditional [[deny]] always overrides,\n"
    "  - several roles granting the same topic.\n"
    "\n"
    "exit status: 0 no problems, 1 errors or warnings found, 2 the file cannot be read.\n";

const char* kExplainHelp =
    "usage: certacl explain --policy POLICY --cert PEM [--client-id ID]\n"
    "                       (--connect | --publish TOPIC | --subscribe FILTER | --read TOPIC)\n"
    "                       [--qos N] [--retain] [--now TIME] [--json]\n"
    "\n"
    "Prints the certificate's attributes as certacl reads them, the roles that\n"
    "match, the topic filters they resolve to for this device, and the decision\n"
    "with the rule that made it.\n"
    "\n"
    "  --policy POLICY     the policy file (TOML)\n"
    "  --cert PEM          the device certificate (PEM)\n"
    "  --client-id ID      the MQTT client id the device presents; default: what\n"
    "                      the policy's connect.client_id binds it to\n"
    "  --connect           decide the connect only\n"
    "  --publish TOPIC     decide a publish to TOPIC (with --qos, --retain)\n"
    "  --subscribe FILTER  decide a subscription ($share/<group>/... allowed)\n"
    "  --read TOPIC        decide the delivery of a message on TOPIC to the device\n"
    "  --qos N             publish QoS (0, 1, 2; default 0)\n"
    "  --retain            the publish is retained\n"
    "  --now TIME          evaluate at TIME (Unix seconds or YYYY-MM-DDTHH:MM:SSZ)\n"
    "                      instead of the current time\n"
    "  --json              one JSON object instead of text\n"
    "\n"
    "exit status: 0 allowed, 1 denied, 2 error (unreadable policy or certificate,\n"
    "bad arguments).\n";

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

int Lint(int argc, char** argv) {
  if (argc == 1 || (argc == 2 && (!std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")))) {
    std::fputs(kLintHelp, argc == 1 ? stderr : stdout);
    return argc == 1 ? kExitUnreadable : kExitClean;
  }
  if (argc != 2) {
    std::fprintf(stderr, "certacl lint: expected exactly one POLICY file (see certacl lint --help)\n");
    return kExitUnreadable;
  }
  const std::string path = argv[1];
  {
    std::ifstream probe(path);
    if (!probe) {
      std::fprintf(stderr, "%s: error: cannot read the policy file: %s\n", path.c_str(), std::strerror(errno));
      return kExitUnreadable;
    }
  }
  std::vector<Diagnostic> diags;
  std::shared_ptr<const Policy> policy = LoadPolicyFile(path, &diags);
  if (policy) {
    std::vector<Diagnostic> warnings = LintPolicy(*policy);
    diags.insert(diags.end(), warnings.begin(), warnings.end());
  }
  size_t errors = 0, warnings = 0;
  for (const Diagnostic& d : diags) {
    std::fprintf(stderr, "%s\n", d.ToString().c_str());
    if (d.severity == Diagnostic::Severity::kError) ++errors;
    if (d.severity == Diagnostic::Severity::kWarning) ++warnings;
  }
  if (errors || warnings) {
    std::fprintf(stderr, "%s: %zu error(s), %zu warning(s)\n", path.c_str(), errors, warnings);
    return kExitProblems;
  }
  std::printf("%s: ok (%zu roles, %zu deny entries)\n", path.c_str(), policy->roles.size(), policy->denies.size());
  return kExitClean;
}

bool ParseTime(const std::string& s, int64_t* out) {
  if (!s.empty() && s.find_first_not_of("0123456789") == std::string::npos) {
    *out = std::stoll(s);
    return true;
  }
  std::tm tm{};
  if (s.size() != 20 || !strptime(s.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm)) return false;
  *out = timegm(&tm);
  return true;
}

struct ExplainArgs {
  std::string policy, cert, client_id, target;
  bool client_id_given = false, json = false, retain = false;
  int qos = 0;
  int64_t now = 0;
  enum class What { kNone, kConnect, kPublish, kSubscribe, kRead } what = What::kNone;
};

// Returns an error message, or "" when the arguments are complete.
std::string ParseExplainArgs(int argc, char** argv, ExplainArgs* a) {
  a->now = static_cast<int64_t>(std::time(nullptr));
  int actions = 0;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](std::string* out) -> bool {
      if (i + 1 >= argc) return false;
      *out = argv[++i];
      return true;
    };
    std::string v;
    if (arg == "--policy") {
      if (!value(&a->policy)) return "--policy needs a file name";
    } else if (arg == "--cert") {
      if (!value(&a->cert)) return "--cert needs a PEM file name";
    } else if (arg == "--client-id") {
      if (!value(&a->client_id)) return "--client-id needs a value";
      a->client_id_given = true;
    } else if (arg == "--connect") {
      a->what = ExplainArgs::What::kConnect;
      ++actions;
    } else if (arg == "--publish" || arg == "--subscribe" || arg == "--read") {
      if (!value(&a->target)) return arg + " needs a topic";
      a->what = arg == "--publish" ? ExplainArgs::What::kPublish
                : arg == "--subscribe" ? ExplainArgs::What::kSubscribe : ExplainArgs::What::kRead;
      ++actions;
    } else if (arg == "--qos") {
      if (!value(&v) || (v != "0" && v != "1" && v != "2")) return "--qos needs 0, 1 or 2";
      a->qos = v[0] - '0';
    } else if (arg == "--retain") {
      a->retain = true;
    } else if (arg == "--now") {
      if (!value(&v) || !ParseTime(v, &a->now)) return "--now needs Unix seconds or YYYY-MM-DDTHH:MM:SSZ";
    } else if (arg == "--json") {
      a->json = true;
    } else {
      return "unknown argument \"" + arg + "\"";
    }
  }
  if (a->policy.empty()) return "--policy POLICY is required";
  if (a->cert.empty()) return "--cert PEM is required";
  if (actions != 1) return "give exactly one of --connect, --publish TOPIC, --subscribe FILTER, --read TOPIC";
  return "";
}

int Explain(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      std::fputs(kExplainHelp, stdout);
      return kExitAllow;
    }
  }
  ExplainArgs a;
  if (std::string err = ParseExplainArgs(argc, argv, &a); !err.empty()) {
    std::fprintf(stderr, "certacl explain: %s (see certacl explain --help)\n", err.c_str());
    return kExitError;
  }
  std::vector<Diagnostic> diags;
  std::shared_ptr<const Policy> policy = LoadPolicyFile(a.policy, &diags);
  if (!policy) {
    for (const Diagnostic& d : diags) std::fprintf(stderr, "%s\n", d.ToString().c_str());
    std::fprintf(stderr, "certacl explain: the policy has errors; run certacl lint %s\n", a.policy.c_str());
    return kExitError;
  }
  std::ifstream in(a.cert, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "certacl explain: cannot read the certificate %s: %s\n", a.cert.c_str(), std::strerror(errno));
    return kExitError;
  }
  std::stringstream pem;
  pem << in.rdbuf();
  Identity identity;
  std::string err;
  if (!Identity::FromPem(pem.str(), &identity, &err)) {
    std::fprintf(stderr, "certacl explain: %s: %s\n", a.cert.c_str(), err.c_str());
    return kExitError;
  }
  std::string client_id_source = "--client-id";
  if (!a.client_id_given) {
    std::string why;
    if (Session::BoundClientId(*policy, identity, &a.client_id, &why)) {
      client_id_source = "bound by connect.client_id";
    } else {
      client_id_source = "none given; " + why;
    }
  }

  Session session = Session::Resolve(policy, identity, a.client_id, a.now);
  Decision decision;
  Action action = Action::kPublish;
  std::string action_name = "connect";
  bool allowed = session.connect_allowed();
  std::string rule = session.ExplainConnect();
  switch (a.what) {
    case ExplainArgs::What::kPublish: {
      action = Action::kPublish;
      action_name = "publish";
      std::string why;
      if (!topic::IsValidName(a.target, &why)) {
        decision = {false, Decision::Source::kInvalid, 0, 0};
      } else {
        decision = session.CheckPublish(a.target, a.qos, a.retain);
      }
      break;
    }
    case ExplainArgs::What::kSubscribe:
      action = Action::kSubscribe;
      action_name = "subscribe";
      decision = session.CheckSubscribe(a.target);
      break;
    case ExplainArgs::What::kRead: {
      action = Action::kSubscribe;
      action_name = "read";
      if (!topic::IsValidName(a.target, nullptr)) {
        decision = {false, Decision::Source::kInvalid, 0, 0};
      } else {
        decision = session.CheckRead(a.target);
      }
      break;
    }
    default:
      break;
  }
  if (a.what != ExplainArgs::What::kConnect) {
    allowed = decision.allowed;
    rule = session.Explain(decision, action);
  }

  const std::vector<Session::FilterView> filters = session.Filters();
  if (a.json) {
    std::string o = "{";
    o += "\"certificate\":" + JsonString(identity.Describe());
    o += ",\"attributes\":{";
    for (size_t i = 0; i < identity.attributes().size(); ++i) {
      const auto& at = identity.attributes()[i];
      o += i ? "," : "";
      o += JsonString(at.name) + ":[";
      for (size_t k = 0; k < at.values.size(); ++k) {
        o += k ? "," : "";
        o += JsonString(at.values[k]);
      }
      o += "]";
    }
    o += "},\"rejected\":[";
    for (size_t i = 0; i < identity.rejected().size(); ++i) {
      o += i ? "," : "";
      o += JsonString(identity.rejected()[i]);
    }
    o += "],\"client_id\":" + JsonString(a.client_id);
    o += ",\"connect\":{\"allowed\":" + std::string(session.connect_allowed() ? "true" : "false") +
         ",\"result\":" + JsonString(ConnectResultName(session.connect_result())) +
         ",\"reason\":" + JsonString(session.ExplainConnect()) + "}";
    o += ",\"roles\":[";
    for (size_t i = 0; i < session.roles().size(); ++i) {
      o += i ? "," : "";
      o += std::string("{\"index\":") + std::to_string(session.roles()[i]) +
           ",\"name\":" + JsonString(policy->roles[session.roles()[i]].name) + "}";
    }
    o += "],\"filters\":[";
    for (size_t i = 0; i < filters.size(); ++i) {
      const auto& f = filters[i];
      o += i ? "," : "";
      o += std::string("{\"action\":") +
           JsonString(f.action == Action::kPublish ? "publish" : "subscribe") +
           ",\"deny\":" + (f.deny ? "true" : "false") + ",\"filter\":" + JsonString(f.filter) +
           ",\"rule\":" + JsonString(f.deny ? policy->DenyLabel(f.owner) : policy->RoleLabel(f.owner)) +
           ",\"entry\":" + std::to_string(f.entry);
      if (f.action == Action::kPublish && !f.deny) {
        o += ",\"max_qos\":" + std::to_string(f.max_qos) + ",\"retain\":" + (f.retain ? "true" : "false");
      }
      o += "}";
    }
    o += "],\"notes\":[";
    for (size_t i = 0; i < session.notes().size(); ++i) {
      o += i ? "," : "";
      o += JsonString(session.notes()[i]);
    }
    o += "],\"decision\":{\"action\":" + JsonString(action_name);
    if (a.what != ExplainArgs::What::kConnect) o += ",\"target\":" + JsonString(a.target);
    o += ",\"allowed\":" + std::string(allowed ? "true" : "false") + ",\"rule\":" + JsonString(rule) + "}}";
    std::printf("%s\n", o.c_str());
    return allowed ? kExitAllow : kExitDeny;
  }

  std::printf("certificate: %s\n", identity.Describe().c_str());
  std::printf("attributes:\n");
  for (const auto& at : identity.attributes()) {
    for (const std::string& v : at.values) std::printf("  %-24s %s\n", at.name.c_str(), JsonString(v).c_str());
  }
  for (const std::string& r : identity.rejected()) std::printf("  rejected: %s\n", r.c_str());
  std::printf("client id: %s (%s)\n", JsonString(a.client_id).c_str(), client_id_source.c_str());
  std::printf("matched roles:%s\n", session.roles().empty() ? " none" : "");
  for (uint32_t r : session.roles()) {
    std::printf("  %s at %s:%u\n", policy->RoleLabel(r).c_str(), policy->file.c_str(), policy->roles[r].pos.line);
  }
  std::printf("resolved filters:%s\n", filters.empty() ? " none" : "");
  for (const auto& f : filters) {
    std::string kind = std::string(f.deny ? "deny " : "allow ") + (f.action == Action::kPublish ? "publish" : "subscribe");
    std::string limits;
    if (f.action == Action::kPublish && !f.deny && (f.max_qos < 2 || !f.retain)) {
      limits = ", max QoS " + std::to_string(f.max_qos) + (f.retain ? "" : ", no retain");
    }
    std::printf("  %-16s %-40s (%s %s[%u]%s)\n", kind.c_str(), std::string(f.filter).c_str(),
                f.deny ? policy->DenyLabel(f.owner).c_str() : policy->RoleLabel(f.owner).c_str(),
                f.action == Action::kPublish ? "publish" : "subscribe", f.entry, limits.c_str());
  }
  if (!session.notes().empty()) {
    std::printf("notes:\n");
    for (const std::string& n : session.notes()) std::printf("  %s\n", n.c_str());
  }
  std::printf("connect: %s\n", session.ExplainConnect().c_str());
  std::string target;
  if (a.what == ExplainArgs::What::kPublish) {
    target = " " + JsonString(a.target) + " (QoS " + std::to_string(a.qos) + (a.retain ? ", retained" : "") + ")";
  } else if (a.what != ExplainArgs::What::kConnect) {
    target = " " + JsonString(a.target);
  }
  std::printf("decision: %s %s%s: %s\n", allowed ? "ALLOW" : "DENY", action_name.c_str(), target.c_str(), rule.c_str());
  return allowed ? kExitAllow : kExitDeny;
}

}  // namespace
}  // namespace certacl

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    if (argc >= 3 && !std::strcmp(argv[1], "help")) {
      if (!std::strcmp(argv[2], "lint")) return std::fputs(certacl::kLintHelp, stdout), 0;
      if (!std::strcmp(argv[2], "explain")) return std::fputs(certacl::kExplainHelp, stdout), 0;
    }
    std::fputs(certacl::kMainHelp, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!std::strcmp(argv[1], "--version")) {
    std::printf("certacl 0.1.0\n");
    return 0;
  }
  if (!std::strcmp(argv[1], "lint")) return certacl::Lint(argc - 1, argv + 1);
  if (!std::strcmp(argv[1], "explain")) return certacl::Explain(argc - 1, argv + 1);
  std::fprintf(stderr, "certacl: unknown command \"%s\"; expected lint or explain (see certacl --help)\n", argv[1]);
  return 2;
}
