#include "tests/integration/fake_llm.h"

#include <curl/curl.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "common/subprocess.h"

namespace agentfleet::testing {

absl::StatusOr<std::unique_ptr<FakeLlm>> FakeLlm::Start(const std::string& dir, double delay_s, bool embedding_model) {
  std::string port_file = dir + "/fake_llm.port";
  std::remove(port_file.c_str());
  std::vector<std::string> argv = {"/usr/bin/python3", std::string(AGENTFLEET_SOURCE_DIR) + "/tests/fake_llm/fake_llm.py",
                                   "--port-file", port_file, "--delay", absl::StrCat(delay_s)};
  if (embedding_model) {
    const char* home = std::getenv("HOME");
    std::string env_dir = absl::StrCat(home != nullptr ? home : "/tmp", "/.cache/agentfleet/embedding-env");
    std::string command = absl::StrCat(AGENTFLEET_SOURCE_DIR, "/tests/fake_llm/embedding-env.sh ", env_dir, " 2>>",
                                       dir, "/embedding-env.log");
    FILE* pipe = popen(command.c_str(), "r");
    if (pipe == nullptr) return absl::UnavailableError("cannot run " + command);
    char line[4096] = {0};
    bool got = fgets(line, sizeof line, pipe) != nullptr;
    int status = pclose(pipe);
    if (!got || status != 0) {
      return absl::UnavailableError(absl::StrCat("the embedding model's environment could not be built; see ", dir,
                                                 "/embedding-env.log"));
    }
    argv[0] = std::string(absl::StripTrailingAsciiWhitespace(line));
    argv.push_back("--embedding-model");
  }
  auto pid = Spawn(argv, SpawnOptions::LogTo(dir + "/fake_llm.log"));
  if (!pid.ok()) return pid.status();
  std::unique_ptr<FakeLlm> fake(new FakeLlm());
  fake->pid_ = *pid;
  for (absl::Time until = absl::Now() + absl::Seconds(60); absl::Now() < until; absl::SleepFor(absl::Milliseconds(20))) {
    std::ifstream in(port_file);
    if (in >> fake->port_) return fake;
    if (!IsRunning(*pid)) break;
  }
  return absl::UnavailableError("the fake LLM server did not start; see " + dir + "/fake_llm.log");
}

FakeLlm::~FakeLlm() {
  if (pid_ > 0) Stop(pid_, absl::Seconds(5));
}

std::string FakeLlm::base_url() const { return absl::StrCat("http://127.0.0.1:", port_); }

nlohmann::json FakeLlm::Stats() const {
  return nlohmann::json::parse(HttpGet(base_url() + "/_stats").second, nullptr, false);
}

nlohmann::json FakeLlm::Spans() const {
  return nlohmann::json::parse(HttpGet(base_url() + "/_spans").second, nullptr, false);
}

bool FakeLlm::SetToolAnswer(const std::string& path, const nlohmann::json& answer) const {
  CURL* c = curl_easy_init();
  std::string url = base_url() + "/_tool_answers/" + path, body = answer.dump();
  long status = 0;
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PUT");
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, +[](char*, size_t size, size_t n, void*) { return size * n; });
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  struct curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(c);
  return status == 200;
}

nlohmann::json FakeLlm::Requests() const {
  return nlohmann::json::parse(HttpGet(base_url() + "/_requests").second, nullptr, false);
}

ModelResponse CallAndWait(ModelProvider& provider, ModelRequest request, absl::Duration timeout) {
  absl::Notification done;
  ModelResponse out;
  provider.Call(std::move(request), [&](ModelResponse response) {
    out = std::move(response);
    done.Notify();
  });
  EXPECT_TRUE(done.WaitForNotificationWithTimeout(timeout)) << "no answer within " << timeout;
  return out;
}

namespace {
size_t Append(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}
}  // namespace

std::pair<long, std::string> HttpGet(const std::string& url) {
  CURL* c = curl_easy_init();
  std::string body;
  long status = 0;
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &Append);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(c);
  return {status, body};
}

}  // namespace agentfleet::testing
