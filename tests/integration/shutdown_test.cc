// Shutdown always ends (issue 15, item 10): nothing a broker does may hold a
// stopping process. Here the "broker" accepts connections and never answers.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "metrics/lag_monitor.h"
#include "metrics/metrics.h"

namespace agentfleet {
namespace {

// A listening socket on 127.0.0.1 that never accepts: connections complete
// (the kernel's backlog) and every request waits for an answer forever.
class SilentBroker {
 public:
  SilentBroker() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(listen(fd_, 64), 0);
    socklen_t len = sizeof addr;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~SilentBroker() { close(fd_); }
  std::string bootstrap() const { return absl::StrCat("127.0.0.1:", port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST(ShutdownTest, TheLagMonitorNeverHoldsAStoppingProcessOnABrokerThatDoesNotAnswer) {
  SilentBroker broker;
  auto registry = NewRegistry("coordinator");
  auto lag = std::make_unique<LagMonitor>(*registry, Properties{{"bootstrap.servers", broker.bootstrap()}},
                                          std::vector<LagTarget>{{"g", {"a", "b", "c"}}});
  lag->Start(absl::Milliseconds(100));
  absl::SleepFor(absl::Seconds(1));  // a read is under way, waiting for an answer that never comes
  absl::Time began = absl::Now();
  lag.reset();
  // The destructor waits at most 5 s for the read in progress.
  EXPECT_LT(absl::Now() - began, absl::Seconds(15));
}

}  // namespace
}  // namespace agentfleet
