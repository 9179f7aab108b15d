#include "cli/schemas.h"

#include <iostream>
#include <map>

#include "absl/strings/str_cat.h"
#include "curl/curl.h"
#include "absl/synchronization/notification.h"
#include "agentfleet/v1/state.pb.h"
#include "agentfleet/v1/task.pb.h"
#include "agentfleet/v1/work.pb.h"
#include "agentfleet/v1/audit.pb.h"
#include "kafka/topics.h"
#include "nlohmann/json.hpp"
#include "provider/http_client.h"

namespace agentfleet {
namespace {

using google::protobuf::FileDescriptor;
using Json = nlohmann::json;

// Subject names hold '/' (import paths): escaped in the URL path.
std::string Escape(const std::string& s) {
  char* escaped = curl_easy_escape(nullptr, s.data(), static_cast<int>(s.size()));
  std::string out = escaped ? escaped : "";
  curl_free(escaped);
  return out;
}

class Registry {
 public:
  Registry(std::string url, absl::Duration timeout) : url_(std::move(url)), timeout_(timeout) {
    while (!url_.empty() && url_.back() == '/') url_.pop_back();
  }

  // POSTs `body` to `path`; the JSON answer of a 200, else an error naming both.
  absl::StatusOr<Json> Post(const std::string& path, const Json& body) {
    HttpRequest request;
    request.url = url_ + path;
    request.headers = {"Content-Type: application/vnd.schemaregistry.v1+json",
                       "Accept: application/vnd.schemaregistry.v1+json"};
    request.body = body.dump();
    request.timeout = timeout_;
    HttpResponse response;
    absl::Notification done;
    http_.Send(std::move(request), [&](HttpResponse r) {
      response = std::move(r);
      done.Notify();
    });
    if (!done.WaitForNotificationWithTimeout(timeout_ + absl::Seconds(5))) {
      return absl::DeadlineExceededError(absl::StrCat("schema registry ", url_, path, ": no answer"));
    }
    if (response.transport != HttpResponse::Transport::kOk) {
      return absl::UnavailableError(absl::StrCat("schema registry ", url_, path, ": ", response.transport_error));
    }
    Json j = Json::parse(response.body, nullptr, false);
    if (response.status != 200 || j.is_discarded()) {
      return absl::FailedPreconditionError(
          absl::StrCat("schema registry ", url_, path, ": HTTP ", response.status, ": ", response.body.substr(0, 300)));
    }
    return j;
  }

 private:
  std::string url_;
  absl::Duration timeout_;
  HttpClient http_;
};

class Registrar {
 public:
  explicit Registrar(Registry* registry) : registry_(registry) {}

  // Registers `file` under `subject` (its imports first, each under its own
  // import path); returns the registered version.
  absl::StatusOr<RegisteredSchema> Register(const std::string& subject, const FileDescriptor* file) {
    if (auto it = done_.find(subject); it != done_.end()) return it->second;
    Json references = Json::array();
    for (int i = 0; i < file->dependency_count(); ++i) {
      const FileDescriptor* dep = file->dependency(i);
      auto registered = Register(dep->name(), dep);
      if (!registered.ok()) return registered.status();
      references.push_back({{"name", dep->name()}, {"subject", dep->name()}, {"version", registered->version}});
    }
    Json schema = {{"schemaType", "PROTOBUF"}, {"schema", file->DebugString()}, {"references", references}};
    auto created = registry_->Post("/subjects/" + Escape(subject) + "/versions", schema);
    if (!created.ok()) return created.status();
    // The lookup names the version too (registering answers with the id only).
    auto found = registry_->Post("/subjects/" + Escape(subject), schema);
    if (!found.ok()) return found.status();
    RegisteredSchema r{subject, found->value("id", 0), found->value("version", 0)};
    if (r.id <= 0 || r.version <= 0) {
      return absl::FailedPreconditionError(absl::StrCat("schema registry: no id or version for ", subject, ": ",
                                                        found->dump()));
    }
    done_[subject] = r;
    order_.push_back(r);
    return r;
  }
  const std::vector<RegisteredSchema>& order() const { return order_; }

 private:
  Registry* registry_;
  std::map<std::string, RegisteredSchema> done_;
  std::vector<RegisteredSchema> order_;
};

}  // namespace

std::vector<SchemaSubject> FleetSchemaSubjects(const FleetConfig& config) {
  Topics t(config.kafka.topic_prefix);
  const FileDescriptor* task = v1::TaskSubmission::descriptor()->file();
  const FileDescriptor* work = v1::WorkItem::descriptor()->file();
  const FileDescriptor* state = v1::TaskState::descriptor()->file();
  std::vector<SchemaSubject> out = {
      {t.tasks + "-value", task, v1::TaskSubmission::descriptor()->full_name()},
      {t.results + "-value", task, v1::TaskResult::descriptor()->full_name()},
      {t.events + "-value", work, v1::WorkEvent::descriptor()->full_name()},
      {t.state + "-value", state, v1::TaskState::descriptor()->full_name()},
      {t.costs + "-value", task, v1::CostEntry::descriptor()->full_name()},
  };
  for (const auto& [agent, unused] : config.agents) {
    out.push_back({t.Work(agent) + "-value", work, v1::WorkItem::descriptor()->full_name()});
  }
  if (config.HasActions()) {
    out.push_back({t.audit + "-value", v1::AuditEntry::descriptor()->file(), v1::AuditEntry::descriptor()->full_name()});
  }
  return out;
}

absl::StatusOr<std::vector<RegisteredSchema>> RegisterSchemas(const std::string& registry_url,
                                                              const std::vector<SchemaSubject>& subjects,
                                                              absl::Duration timeout) {
  Registry registry(registry_url, timeout);
  Registrar registrar(&registry);
  for (const SchemaSubject& s : subjects) {
    auto r = registrar.Register(s.subject, s.file);
    if (!r.ok()) return r.status();
  }
  return registrar.order();
}

int RunSchemasRegister(const FleetConfig& config, const std::string& registry_url, bool json) {
  if (registry_url.empty()) {
    std::cerr << "agentfleet schemas register: --registry URL is required\n";
    return 2;
  }
  auto registered = RegisterSchemas(registry_url, FleetSchemaSubjects(config), absl::Seconds(30));
  if (!registered.ok()) {
    std::cerr << "agentfleet schemas register: " << registered.status().message() << "\n";
    return 1;
  }
  Json out = Json::array();
  for (const RegisteredSchema& r : *registered) {
    if (json) {
      out.push_back({{"subject", r.subject}, {"id", r.id}, {"version", r.version}});
    } else {
      std::cout << r.subject << ": id " << r.id << ", version " << r.version << "\n";
    }
  }
  if (json) std::cout << out.dump() << "\n";
  return 0;
}

}  // namespace agentfleet
