#include "tests/integration/fleet_harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "absl/time/clock.h"
#include "common/subprocess.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace agentfleet::testing {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

std::string Tail(const std::string& text, size_t lines) {
  if (text.empty()) return text;
  size_t pos = text.size();
  for (size_t n = 0; n <= lines && pos > 0; ++n) {
    pos = text.rfind('\n', pos - 1);
    if (pos == std::string::npos) return text;
  }
  return pos + 1 < text.size() ? text.substr(pos + 1) : text;
}

void ReplaceFirst(std::string* text, const std::string& from, const std::string& to) {
  size_t at = text->find(from);
  if (at != std::string::npos) text->replace(at, from.size(), to);
}

void ReplaceAll(std::string* text, const std::string& from, const std::string& to) {
  for (size_t at = text->find(from); at != std::string::npos; at = text->find(from, at + to.size())) {
    text->replace(at, from.size(), to);
  }
}

}  // namespace

std::string KafkaBootstrap() {
  if (const char* env = std::getenv("AGENTFLEET_TEST_BOOTSTRAP"); env && *env) return env;
  if (const char* file = std::getenv("AGENTFLEET_TEST_BOOTSTRAP_FILE"); file && *file) {
    std::string s = ReadFile(file);
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
  }
  return "";
}

std::string BinDir() {
  const char* env = std::getenv("AGENTFLEET_BIN_DIR");
  return env ? env : ExecutableDir();
}

Fleet::Fleet(const std::string& name) : name_(name) {
  absl::BitGen gen;
  std::string tag = absl::StrCat(name, "-", getpid(), "-", absl::Uniform<uint32_t>(gen));
  dir_ = (std::filesystem::temp_directory_path() / ("agentfleet-it-" + tag)).string();
  std::filesystem::create_directories(dir_);
  prefix_ = "it." + tag + ".";
}

Fleet::~Fleet() {
  for (auto it = pids_.rbegin(); it != pids_.rend(); ++it) Stop(*it, absl::Seconds(10));
  // A failed test's directory (config, every process's log) stays for
  // reading; AGENTFLEET_TEST_KEEP=1 keeps every one.
  const char* keep = std::getenv("AGENTFLEET_TEST_KEEP");
  if (!::testing::Test::HasFailure() && !(keep && std::string(keep) == "1")) std::filesystem::remove_all(dir_);
}

std::string Fleet::WriteConfig(const std::string& bootstrap,
                               const std::vector<std::pair<std::string, std::string>>& edits,
                               const std::string& coordinator_yaml, const std::string& worker_yaml) {
  bootstrap_ = bootstrap;
  std::string text = ReadFile(std::string(AGENTFLEET_SOURCE_DIR) + "/" + example_);
  ReplaceFirst(&text, "topic_prefix: agentfleet.", "topic_prefix: " + prefix_);
  ReplaceFirst(&text, "bootstrap.servers: 127.0.0.1:9092", "bootstrap.servers: " + bootstrap);
  for (const auto& [from, to] : edits) ReplaceAll(&text, from, to);
  text += absl::StrCat("\ncoordinator: {group_id: ", prefix_, "coordinator",
                       coordinator_yaml.empty() ? "" : ", " + coordinator_yaml, "}\nworker: {group_prefix: ",
                       prefix_, "workers", worker_yaml.empty() ? "" : ", " + worker_yaml, "}\n");
  config_path_ = dir_ + "/fleet.yaml";
  std::ofstream(config_path_) << text;
  return config_path_;
}

absl::StatusOr<FleetConfig> Fleet::LoadConfig() const { return LoadConfigFile(config_path_); }

pid_t Fleet::Start(const std::string& binary, const std::vector<std::string>& args, const std::string& log) {
  if (launcher_.empty()) return StartProgram(BinDir() + "/" + binary, args, log);
  std::vector<std::string> full(launcher_.begin() + 1, launcher_.end());
  full.push_back(BinDir() + "/" + binary);
  full.insert(full.end(), args.begin(), args.end());
  return StartProgram(launcher_[0], full, log);
}

pid_t Fleet::StartProgram(const std::string& program, const std::vector<std::string>& args, const std::string& log) {
  std::string path = program;
  if (path.find('/') == std::string::npos) {
    for (absl::string_view dir : absl::StrSplit(getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin", ':')) {
      std::string candidate = absl::StrCat(dir, "/", program);
      if (access(candidate.c_str(), X_OK) == 0) {
        path = candidate;
        break;
      }
    }
  }
  std::vector<std::string> argv = {path};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string log_path = dir_ + "/" + log + ".log";
  auto pid = Spawn(argv, SpawnOptions::LogTo(log_path));
  if (!pid.ok()) return -1;
  pids_.push_back(*pid);
  logs_.push_back(log_path);
  log_of_[*pid] = log_path;
  return *pid;
}

absl::StatusOr<std::string> Fleet::StartDevBroker(int brokers) {
  std::string file = dir_ + "/bootstrap";
  // The broker needs a config for the topic list; the bootstrap is not known yet.
  if (config_path_.empty()) WriteConfig("127.0.0.1:1");
  if (Start("agentfleet", {"broker", "--config", config_path_, "--bootstrap_file", file, "--brokers",
                           absl::StrCat(brokers), "--control_address", "127.0.0.1:0"},
            "broker") < 0) {
    return absl::InternalError("cannot start agentfleet broker");
  }
  // The control address is written first, the bootstrap last.
  for (absl::Time until = absl::Now() + absl::Seconds(30); absl::Now() < until;) {
    std::string s = ReadFile(file);
    if (!s.empty()) {
      while (!s.empty() && s.back() == '\n') s.pop_back();
      broker_control_ = std::string(absl::StripAsciiWhitespace(ReadFile(file + ".control")));
      dev_broker_ = true;
      return s;
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::DeadlineExceededError("the development broker did not write its bootstrap");
}

absl::Status Fleet::BrokerFault(const std::string& fault) {
  auto r = Run({"agentfleet", "broker", "fault", "--control_address", broker_control_, "--", fault}, absl::Seconds(20));
  if (!r.ok()) return r.status();
  if (r->first != 0) return absl::InternalError(absl::StrCat("broker fault '", fault, "': ", r->second));
  return absl::OkStatus();
}

absl::Status Fleet::CreateTopics() {
  auto r = Run({"agentfleet", "topics", "create", "--config", config_path_}, absl::Seconds(60));
  if (!r.ok()) return r.status();
  if (r->first != 0) return absl::InternalError("topics create failed: " + r->second);
  return absl::OkStatus();
}

pid_t Fleet::StartCoordinator(const std::vector<std::string>& extra) {
  // Free ports for the health endpoints; a test's own --http_address wins.
  std::vector<std::string> args = {"--config", config_path_, "--http_address", "127.0.0.1:0"};
  if (dev_broker_) args.push_back("--dev_broker");
  args.insert(args.end(), extra.begin(), extra.end());
  return Start("agentfleet-coordinator", args, absl::StrCat("coordinator-", pids_.size()));
}

pid_t Fleet::StartWorker(const std::string& id, const std::vector<std::string>& extra) {
  std::vector<std::string> args = {"--config", config_path_, "--id", id, "--http_address", "127.0.0.1:0"};
  if (dev_broker_) args.push_back("--dev_broker");
  args.insert(args.end(), extra.begin(), extra.end());
  return Start("agentfleet-worker", args, id);
}

absl::StatusOr<std::pair<int, std::string>> Fleet::Run(const std::vector<std::string>& argv,
                                                       absl::Duration timeout) {
  std::vector<std::string> full = argv;
  if (argv[0].find('/') == std::string::npos) full[0] = BinDir() + "/" + argv[0];
  std::string log = absl::StrCat(dir_, "/run-", logs_.size(), ".log");
  auto pid = Spawn(full, SpawnOptions::LogTo(log));
  if (!pid.ok()) return pid.status();
  logs_.push_back(log);
  auto code = WaitExit(*pid, timeout);
  if (!code.ok()) {
    Stop(*pid, absl::Seconds(5));
    return absl::DeadlineExceededError(absl::StrCat(argv[0], " did not finish: ", Tail(ReadFile(log), 20)));
  }
  return std::make_pair(*code, ReadFile(log));
}

bool Fleet::AllRunning() const {
  for (pid_t p : pids_) {
    if (!IsRunning(p)) return false;
  }
  return true;
}

bool Fleet::IsAlive(pid_t pid) const { return IsRunning(pid); }

void Fleet::Kill(pid_t pid) {
  agentfleet::Signal(pid, SIGKILL);
  WaitExit(pid, absl::Seconds(10)).IgnoreError();
  pids_.erase(std::remove(pids_.begin(), pids_.end(), pid), pids_.end());
}

void Fleet::Signal(pid_t pid, int signal) { agentfleet::Signal(pid, signal); }

int Fleet::StopProcess(pid_t pid, absl::Duration grace) {
  int code = Stop(pid, grace);
  pids_.erase(std::remove(pids_.begin(), pids_.end(), pid), pids_.end());
  return code;
}

absl::StatusOr<int> Fleet::WaitProcess(pid_t pid, absl::Duration timeout) {
  auto code = WaitExit(pid, timeout);
  if (!code.ok()) return code.status();  // still running: still the fleet's, stopped with it
  pids_.erase(std::remove(pids_.begin(), pids_.end(), pid), pids_.end());
  return *code;
}

std::string Fleet::LogTailOf(pid_t pid, size_t lines) const {
  auto it = log_of_.find(pid);
  return it == log_of_.end() ? "" : Tail(ReadFile(it->second), lines);
}

std::string Fleet::LogTails() const {
  std::string out;
  for (const auto& log : logs_) out += "==> " + log + "\n" + Tail(ReadFile(log), 40) + "\n";
  return out;
}

std::string Fleet::WhereIs(const std::string& task_id) {
  std::string out = "\n==> agentfleet trace " + task_id + "\n";
  auto trace = Run({"agentfleet", "trace", task_id, "--config", config_path_}, absl::Seconds(60));
  out += trace.ok() ? Tail(trace->second, 40) : std::string(trace.status().message());
  for (const auto& log : logs_) {
    std::ifstream in(log);
    int lines = 0;
    for (std::string line; std::getline(in, line) && lines < 20;) {
      if (line.find(task_id) == std::string::npos) continue;
      if (lines++ == 0) out += "\n==> lines of " + log + " naming it\n";
      out += line + "\n";
    }
    if (log.find("/coordinator-") != std::string::npos) out += "==> " + log + " ends\n" + Tail(ReadFile(log), 4);
  }
  return out + "\n";
}

std::string Fleet::LogOf(pid_t pid) const {
  auto it = log_of_.find(pid);
  return it == log_of_.end() ? "" : ReadFile(it->second);
}

int Fleet::CountInLogs(const std::string& text) const {
  int count = 0;
  for (const auto& log : logs_) {
    std::ifstream in(log);
    for (std::string line; std::getline(in, line);) count += line.find(text) != std::string::npos;
  }
  return count;
}

int Fleet::HttpPort(pid_t pid) const {
  auto it = log_of_.find(pid);
  if (it == log_of_.end()) return 0;
  for (absl::Time until = absl::Now() + absl::Seconds(20); absl::Now() < until; absl::SleepFor(absl::Milliseconds(50))) {
    std::ifstream in(it->second);
    for (std::string line; std::getline(in, line);) {
      nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_object() && j.value("msg", "") == "http listening") return std::stoi(j.value("port", "0"));
    }
  }
  return 0;
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

void ExpectCleanAudit(Fleet& fleet) {
  auto audit = fleet.Run({"agentfleet", "audit", "--json", "--config", fleet.config_path()}, absl::Seconds(120));
  ASSERT_TRUE(audit.ok()) << audit.status();
  EXPECT_EQ(audit->first, 0) << audit->second;
  EXPECT_THAT(audit->second, ::testing::HasSubstr(R"("clean":true)"));
  EXPECT_THAT(audit->second, ::testing::HasSubstr(R"("overspent":0)"));
}

}  // namespace agentfleet::testing
