// Unit tests for the plugin's broker-independent pieces: options, the log
// rate limiter and the persistent-session state file.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "plugin/options.h"
#include "plugin/rate_limiter.h"
#include "plugin/state_file.h"
#include "tests/testing/temp_dir.h"

namespace certacl::plugin {
namespace {

TEST(PluginOptions, RequiresAPolicy) {
  Options o;
  EXPECT_EQ(ParseOptions({}, &o), "plugin_opt_policy is required: the path of the certacl policy file");
}

TEST(PluginOptions, ParsesEveryOption) {
  Options o;
  EXPECT_EQ(ParseOptions({{"policy", "/p.toml"}, {"state_file", "/s"}, {"state_writer", "/w"}, {"name", "boot"},
                          {"sys_interval", "5"}, {"log_refusals_per_minute", "7"}, {"max_offline_sessions", "9"},
                          {"keep_mqtt5_clean_sessions", "false"}},
                         &o),
            "");
  EXPECT_EQ(o.policy, "/p.toml");
  EXPECT_EQ(o.state_file, "/s");
  EXPECT_EQ(o.state_writer, "/w");
  EXPECT_EQ(o.SysPrefix(), "$SYS/broker/certacl/boot");
  EXPECT_EQ(o.sys_interval, 5);
  EXPECT_EQ(o.log_refusals_per_minute, 7);
  EXPECT_EQ(o.max_offline_sessions, 9u);
  EXPECT_FALSE(o.keep_mqtt5_clean_sessions);
  Options d;
  EXPECT_EQ(ParseOptions({{"policy", "/p"}}, &d), "");
  EXPECT_EQ(d.SysPrefix(), "$SYS/broker/certacl");
}

TEST(PluginOptions, RejectsUnknownAndMalformed) {
  Options o;
  EXPECT_EQ(ParseOptions({{"policy", "/p"}, {"polcy", "x"}}, &o).rfind("unknown option plugin_opt_polcy;", 0), 0u);
  EXPECT_EQ(ParseOptions({{"policy", "/p"}, {"sys_interval", "ten"}}, &o),
            "plugin_opt_sys_interval must be 0..86400 seconds, got \"ten\"");
  EXPECT_EQ(ParseOptions({{"policy", "/p"}, {"name", "a/b"}}, &o),
            "plugin_opt_name \"a/b\" must be non-empty and contain no '/', '+' or '#'");
  EXPECT_EQ(ParseOptions({{"policy", "/p"}, {"state_writer", "certacl-state-writer"}}, &o),
            "plugin_opt_state_writer must be an absolute path, got \"certacl-state-writer\"");
}

TEST(RateLimiter, AllowsNPerMinuteAndCountsTheRest) {
  RateLimiter r(2);
  uint64_t suppressed = 0;
  EXPECT_TRUE(r.Allow(1000, &suppressed));
  EXPECT_TRUE(r.Allow(1001, &suppressed));
  EXPECT_FALSE(r.Allow(1002, &suppressed));
  EXPECT_FALSE(r.Allow(1059, &suppressed));
  EXPECT_EQ(suppressed, 0u);
  EXPECT_TRUE(r.Allow(1060, &suppressed));
  EXPECT_EQ(suppressed, 2u);
}

TEST(StateFile, SurvivesReopenAndCompacts) {
  certacl::testing::TempDir dir;
  const std::string path = dir.File("sessions");
  {
    StateFile f;
    std::unordered_map<std::string, std::string> entries;
    ASSERT_EQ(f.Open(path, &entries), "");
    EXPECT_TRUE(entries.empty());
    f.Put("dev-1", std::string("\x30\x82\x00\x01", 4));
    f.Put("dev 2", "der2");
    f.Put("dev-3", "der3");
    f.Remove("dev-3");
    f.Put("dev-1", "der1-renewed");
    f.Flush();
  }
  certacl::testing::WriteFile(path, certacl::testing::ReadFile(path) + "P 6465762d34");  // a torn last line is skipped
  StateFile f;
  std::unordered_map<std::string, std::string> entries;
  ASSERT_EQ(f.Open(path, &entries), "");
  EXPECT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries["dev-1"], "der1-renewed");
  EXPECT_EQ(entries["dev 2"], "der2");
  const std::string content = certacl::testing::ReadFile(path);
  EXPECT_EQ(std::count(content.begin(), content.end(), '\n'), 2);  // compacted
}

// "S" lines: the signature checks already done, kept across restarts in
// the order written, distinct, at most `max_signatures` (the newest).
TEST(StateFile, KeepsTheNewestDistinctSignatureChecks) {
  certacl::testing::TempDir dir;
  const std::string path = dir.File("sessions");
  auto key = [](const char* cert) { return certacl::SignatureCache::KeyOf(cert, "ca-key"); };
  std::vector<certacl::SignatureCache::Key> keys;
  std::unordered_map<std::string, std::string> entries;
  {
    StateFile f;
    ASSERT_EQ(f.Open(path, &entries, &keys, 3), "");
    EXPECT_TRUE(keys.empty());
    f.PutSignature(key("a"));
    f.Put("dev-1", "der1");
    f.PutSignature(key("b"));
    f.PutSignature(key("a"));  // again (the cache was emptied when full)
    f.PutSignature(key("c"));
    f.PutSignature(key("d"));
    f.Flush();
  }
  const std::string torn = "S " + HexEncode(std::string(reinterpret_cast<const char*>(key("e").data()), 15));
  certacl::testing::WriteFile(path, certacl::testing::ReadFile(path) + "X new-kind of line\n" + torn);
  {
    StateFile f;
    std::string warning = "stale";
    ASSERT_EQ(f.Open(path, &entries, &keys, 3, &warning), "");
    EXPECT_EQ(warning, "");
    EXPECT_EQ(keys, (std::vector<certacl::SignatureCache::Key>{key("a"), key("c"), key("d")}));
    EXPECT_EQ(entries.size(), 1u);
  }
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);  // it vouches for certificates
  const std::string content = certacl::testing::ReadFile(path);
  EXPECT_EQ(std::count(content.begin(), content.end(), '\n'), 4);  // compacted: 3 S + 1 P
  // Opened without `signatures` (as before they existed): "S" lines dropped.
  StateFile f;
  ASSERT_EQ(f.Open(path, &entries), "");
  EXPECT_EQ(entries.size(), 1u);
  EXPECT_EQ(certacl::testing::ReadFile(path).find("S "), std::string::npos);
}

size_t ThreadsOfThisProcess() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/task")) ++n;
  return n;
}

// Opening (reading, compacting) runs no thread: the writer starts with the
// first line to write, so a broker that only reads the file stays single-
// threaded (glibc's cheaper malloc).
TEST(StateFile, StartsItsWriterOnlyWhenThereIsSomethingToWrite) {
  certacl::testing::TempDir dir;
  const std::string path = dir.File("sessions");
  std::unordered_map<std::string, std::string> entries;
  std::vector<certacl::SignatureCache::Key> keys;
  const size_t before = ThreadsOfThisProcess();
  StateFile f;
  ASSERT_EQ(f.Open(path, &entries, &keys, 10), "");
  f.Flush();
  EXPECT_EQ(ThreadsOfThisProcess(), before);
  f.Put("dev-1", "der1");
  EXPECT_GT(ThreadsOfThisProcess(), before);  // the writer (under TSan, also its runtime's own thread)
  f.Flush();
  EXPECT_NE(certacl::testing::ReadFile(path).find("P " + HexEncode("dev-1") + " " + HexEncode("der1") + "\n"),
            std::string::npos);
}

// With its writer program (certacl-state-writer, as the plugin runs it),
// the file is written by a child process and this process starts no thread
// at all; Flush() ends the child and the next line starts another.
TEST(StateFile, WritesThroughItsWriterProgramWithoutAThread) {
  certacl::testing::TempDir dir;
  const std::string path = dir.File("sessions");
  std::unordered_map<std::string, std::string> entries;
  std::vector<certacl::SignatureCache::Key> keys;
  const size_t before = ThreadsOfThisProcess();
  const auto key = certacl::SignatureCache::KeyOf("cert", "ca-key");
  {
    StateFile f;
    f.SetWriter(CERTACL_STATE_WRITER);
    std::string warning;
    ASSERT_EQ(f.Open(path, &entries, &keys, 10, &warning), "");
    EXPECT_EQ(warning, "");
    const pid_t first = f.writer_pid();
    ASSERT_GT(first, 0);
    f.Put("dev-1", "der1");
    f.PutSignature(key);
    f.Put("dev-2", "der2");
    f.Remove("dev-2");
    f.Flush();
    EXPECT_EQ(f.writer_pid(), -1);
    EXPECT_EQ(ThreadsOfThisProcess(), before);
    EXPECT_EQ(certacl::testing::ReadFile(path), "P " + HexEncode("dev-1") + " " + HexEncode("der1") + "\nS " +
                                                    HexEncode(std::string(key.begin(), key.end())) + "\nP " +
                                                    HexEncode("dev-2") + " " + HexEncode("der2") + "\nD " +
                                                    HexEncode("dev-2") + "\n");
    f.Put("dev-3", std::string(100000, 'x'));  // longer than the child's read buffer
    EXPECT_GT(f.writer_pid(), 0);
    EXPECT_NE(f.writer_pid(), first);
    EXPECT_FALSE(f.NeedsPoll());
    EXPECT_EQ(f.Poll(), "");
  }  // destruction flushes
  EXPECT_EQ(ThreadsOfThisProcess(), before);
  StateFile f;
  ASSERT_EQ(f.Open(path, &entries, &keys, 10), "");
  EXPECT_EQ(entries, (std::unordered_map<std::string, std::string>{{"dev-1", "der1"}, {"dev-3", std::string(100000, 'x')}}));
  EXPECT_EQ(keys, std::vector<certacl::SignatureCache::Key>{key});
}

// Waits until `pid` has exited (a zombie: its sockets are closed).
void AwaitExit(pid_t pid) {
  for (int i = 0; i < 500; ++i) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(stat, line);
    const size_t paren = line.rfind(')');
    if (paren == std::string::npos || line.substr(paren + 2, 1) == "Z") return;
    ::usleep(10000);
  }
  FAIL() << "pid " << pid << " did not exit";
}

// A child that dies after running long enough is replaced; one that dies
// sooner hands over to a thread. Either way nothing is lost, not even the
// line the child had been sent but had not written, and Poll() says what
// happened.
TEST(StateFile, ReplacesAWriterProgramThatDied) {
  for (const bool replace : {true, false}) {
    SCOPED_TRACE(replace ? "replaced" : "thread takes over");
    certacl::testing::TempDir dir;
    const std::string path = dir.File("sessions");
    std::unordered_map<std::string, std::string> entries;
    StateFile f;
    f.SetWriter(CERTACL_STATE_WRITER, std::chrono::seconds(replace ? 0 : 3600));
    ASSERT_EQ(f.Open(path, &entries), "");
    const pid_t first = f.writer_pid();
    ASSERT_GT(first, 0);
    // dev-0's line reaches the child, which dies before writing it.
    ASSERT_EQ(::kill(first, SIGSTOP), 0);
    f.Put("dev-0", "der0");
    ASSERT_EQ(::kill(first, SIGKILL), 0);
    AwaitExit(first);
    f.Put("dev-1", "der1");
    ASSERT_TRUE(f.NeedsPoll());
    const std::string warning = f.Poll();
    EXPECT_NE(warning.find("the state file writer (pid " + std::to_string(first) + ") was killed by signal 9"),
              std::string::npos)
        << warning;
    if (replace) {
      EXPECT_GT(f.writer_pid(), 0);
      EXPECT_NE(f.writer_pid(), first);
    } else {
      EXPECT_NE(warning.find("it ran less than 3600 s: a thread writes the state file from now on"), std::string::npos)
          << warning;
      EXPECT_EQ(f.writer_pid(), -1);
    }
    f.Put("dev-2", "der2");
    f.Flush();
    EXPECT_EQ(certacl::testing::ReadFile(path), "P " + HexEncode("dev-0") + " " + HexEncode("der0") + "\nP " +
                                                    HexEncode("dev-1") + " " + HexEncode("der1") + "\nP " +
                                                    HexEncode("dev-2") + " " + HexEncode("der2") + "\n");
  }
}

// Without its writer program (not installed beside the plugin), the file is
// still written, by a thread, and Open() says what that costs.
TEST(StateFile, FallsBackToAThreadWithoutItsWriterProgram) {
  certacl::testing::TempDir dir;
  const std::string path = dir.File("sessions");
  std::unordered_map<std::string, std::string> entries;
  StateFile f;
  f.SetWriter(dir.File("no-such-writer"));
  std::string warning;
  ASSERT_EQ(f.Open(path, &entries, nullptr, 0, &warning), "");
  EXPECT_EQ(warning, "cannot start the state file writer \"" + dir.File("no-such-writer") +
                         "\": No such file or directory: a thread writes the state file instead, which slows every "
                         "malloc in the broker (~100,000 instructions more per connect)");
  EXPECT_EQ(f.writer_pid(), -1);
  f.Put("dev-1", "der1");
  f.Flush();
  EXPECT_EQ(certacl::testing::ReadFile(path), "P " + HexEncode("dev-1") + " " + HexEncode("der1") + "\n");
}

// A fleet larger than the cache is verified again and again: the file takes
// at most 2 × max_signatures new "S" lines per process, then drops them.
TEST(StateFile, BoundsTheSignatureLinesOfOneProcess) {
  certacl::testing::TempDir dir;
  const std::string path = dir.File("sessions");
  auto key = [](int i) { return certacl::SignatureCache::KeyOf("cert-" + std::to_string(i), "ca-key"); };
  std::vector<certacl::SignatureCache::Key> keys;
  std::unordered_map<std::string, std::string> entries;
  {
    StateFile f;
    ASSERT_EQ(f.Open(path, &entries, &keys, 2), "");
    for (int i = 0; i < 10; ++i) f.PutSignature(key(i));
    f.Flush();
  }
  const std::string content = certacl::testing::ReadFile(path);
  EXPECT_EQ(std::count(content.begin(), content.end(), '\n'), 4);
  StateFile f;
  ASSERT_EQ(f.Open(path, &entries, &keys, 2), "");
  EXPECT_EQ(keys, (std::vector<certacl::SignatureCache::Key>{key(2), key(3)}));
}

// A state file that others could have written vouches for nothing: its "S"
// lines are ignored, said so, and not written back.
TEST(StateFile, IgnoresSignatureChecksInAFileOthersCanWrite) {
  certacl::testing::TempDir dir;
  const std::string path = dir.File("sessions");
  const auto k = certacl::SignatureCache::KeyOf("cert", "ca-key");
  certacl::testing::WriteFile(path, "S " + HexEncode(std::string(reinterpret_cast<const char*>(k.data()), k.size())) +
                                        "\nP " + HexEncode("dev-1") + " " + HexEncode("der1") + "\n");
  ASSERT_EQ(::chmod(path.c_str(), 0664), 0);
  std::vector<certacl::SignatureCache::Key> keys;
  std::unordered_map<std::string, std::string> entries;
  std::string warning;
  {
    StateFile f;
    ASSERT_EQ(f.Open(path, &entries, &keys, 10, &warning), "");
  }
  EXPECT_TRUE(keys.empty());
  EXPECT_EQ(entries.size(), 1u);
  EXPECT_EQ(warning, "ignored the 1 signature checks in the state file \"" + path +
                         "\": it is writable by group or others (chmod 600 it); devices are verified again");
  StateFile f;  // now 0600, and without the untrusted line
  ASSERT_EQ(f.Open(path, &entries, &keys, 10, &warning), "");
  EXPECT_TRUE(keys.empty());
  EXPECT_EQ(warning, "");
}

TEST(StateFile, UnwritableLocationIsAnError) {
  StateFile f;
  std::unordered_map<std::string, std::string> entries;
  std::string err = f.Open("/nonexistent-dir/sessions", &entries);
  EXPECT_EQ(err, "cannot write the state file \"/nonexistent-dir/sessions.tmp\": No such file or directory");
}

TEST(Hex, RoundTrip) {
  std::string out;
  EXPECT_EQ(HexEncode(std::string("\x00\xff a", 4)), "00ff2061");
  ASSERT_TRUE(HexDecode("00ff2061", &out));
  EXPECT_EQ(out, std::string("\x00\xff a", 4));
  EXPECT_FALSE(HexDecode("0", &out));
  EXPECT_FALSE(HexDecode("zz", &out));
}

}  // namespace
}  // namespace certacl::plugin
