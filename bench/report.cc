#include "bench/report.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/subprocess.h"

namespace agentfleet {
namespace {

constexpr char kBegin[] = "<!-- agentfleet bench: begin (generated, do not edit by hand) -->";
constexpr char kEnd[] = "<!-- agentfleet bench: end -->";

std::string Num(double v, int decimals = 0) {
  std::string s = absl::StrFormat("%.*f", decimals, v);
  if (decimals > 0) return s;
  // Thousands separators for whole numbers.
  std::string out;
  int digits = 0;
  for (auto it = s.rbegin(); it != s.rend(); ++it) {
    if (digits == 3 && *it != '-') {
      out.insert(out.begin(), ',');
      digits = 0;
    }
    out.insert(out.begin(), *it);
    ++digits;
  }
  return out;
}
std::string Ms(double v) { return Num(v, v < 10 ? 2 : 1) + " ms"; }
std::string Ratio(double fleet, double raw) { return raw > 0 ? absl::StrFormat("%.2f×", fleet / raw) : "—"; }
std::string MiB(int64_t bytes) { return Num(bytes / 1048576.0, 1) + " MiB"; }
std::string Met(bool ok) { return ok ? "**met**" : "**not met**"; }

const BrokerResults::Step* StepOf(const BrokerResults& r, const std::string& mode,
                                  const std::string& profile = "default") {
  for (const auto& s : r.steps) {
    if (s.mode == mode && s.profile == profile) return &s;
  }
  return nullptr;
}
const BrokerResults::Throughput* ThroughputOf(const BrokerResults& r, const std::string& mode,
                                              const std::string& profile = "default") {
  for (const auto& t : r.throughput) {
    if (t.mode == mode && t.profile == profile) return &t;
  }
  return nullptr;
}

// The raw pipelined rate a throughput run is set against: the one measured
// beside it, else the one measured before the suite's modes (`fallback`).
double RawRateOf(const BrokerResults::Throughput* t, double fallback) {
  return t && t->raw_messages_per_s > 0 ? t->raw_messages_per_s : fallback;
}

}  // namespace

namespace {

// Latency against throughput: each profile's modes beside the raw round trip
// and pipelined rate measured with the same client settings.
void WriteProfilesTable(std::ostringstream& md, const std::vector<BrokerResults>& results) {
  bool any = false;
  for (const auto& r : results) any = any || r.profiles.size() > 1;
  if (!any) return;
  md << "\n#### Latency against throughput: commit policies and the low-latency profile\n\n";
  md << "Each profile's raw round trip and pipelined rate are measured with its own client settings; *of raw "
        "pipelined* sets each throughput run against the rate measured beside it (above). "
        "*exactly_once (interval)* commits every 100 ms (`commit_policy: interval`, the behaviour before "
        "adaptive commits); *coordinator CPU per step*: the coordinator's CPU time over the throughput run, "
        "per step.\n\n";
  md << "| broker | profile | mode | raw round trip p50 | step p50 | ratio | step p99 | client submit → result p50 "
        "| steps/s | of raw pipelined | coordinator CPU per step |\n";
  md << "|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& r : results) {
    for (const auto& p : r.profiles) {
      for (const auto& s : r.steps) {
        if (s.profile != p.name) continue;
        const auto* t = ThroughputOf(r, s.mode, s.profile);
        md << "| " << r.broker << " | " << p.name << " (" << p.settings << ") | " << s.mode << " | "
           << Ms(p.raw_round_trip.p50) << " | " << Ms(s.step.p50) << " | " << Ratio(s.step.p50, p.raw_round_trip.p50)
           << " | " << Ms(s.step.p99) << " | " << Ms(s.task.p50) << " | " << (t ? Num(t->steps_per_s) : "—") << " | "
           << (t ? Ratio(t->steps_per_s, RawRateOf(t, p.raw_messages_per_s)) : "—") << " | "
           << (t && t->steps > 0 ? Num(1e6 * t->coordinator_cpu_s / t->steps, 1) + " µs" : "—") << " |\n";
      }
    }
  }
}

// The suite's main parts: the raw comparison, concurrency, scale-out, growth.
void WriteMainTables(std::ostringstream& md, const std::vector<BrokerResults>& results, const ReportContext& c) {
  md << "### Against the raw Kafka round trip\n\n";
  md << "| measure | target |";
  for (const auto& r : results) md << " " << r.broker << ": raw | fleet | ratio |";
  md << "\n|---|---|";
  for (size_t i = 0; i < results.size(); ++i) md << "---|---|---|";
  md << "\n";
  auto row = [&](const std::string& name, const std::string& target, auto raw, auto fleet, auto fmt) {
    md << "| " << name << " | " << target << " |";
    for (const auto& r : results) {
      double a = raw(r), b = fleet(r);
      md << " " << fmt(a) << " | " << fmt(b) << " | " << Ratio(b, a) << " |";
    }
    md << "\n";
  };
  auto step_of = [](const std::string& mode, bool p99) {
    return [mode, p99](const BrokerResults& r) {
      const auto* s = StepOf(r, mode);
      return s ? (p99 ? s->step.p99 : s->step.p50) : 0.0;
    };
  };
  auto raw_p50 = [](const BrokerResults& r) { return r.raw_round_trip.p50; };
  auto raw_p99 = [](const BrokerResults& r) { return r.raw_round_trip.p99; };
  auto raw_rate_of = [](const std::string& mode) {
    return [mode](const BrokerResults& r) { return RawRateOf(ThroughputOf(r, mode), r.raw.messages_per_s); };
  };
  auto rate_of = [](const std::string& mode) {
    return [mode](const BrokerResults& r) {
      const auto* t = ThroughputOf(r, mode);
      return t ? t->steps_per_s : 0.0;
    };
  };
  auto per_s = [](double v) { return Num(v) + "/s"; };
  row("step latency p50, at_least_once (round trip p50)", "≤ 1.5×", raw_p50, step_of("at_least_once", false), Ms);
  row("step latency p99, at_least_once (round trip p99)", "≤ 3×", raw_p99, step_of("at_least_once", true), Ms);
  row("step latency p50, exactly_once (round trip p50)", "≤ 2×", raw_p50, step_of("exactly_once", false), Ms);
  row("step latency p99, exactly_once (round trip p99)", "—", raw_p99, step_of("exactly_once", true), Ms);
  row("steps/s, at_least_once (pipelined msg/s beside it)", "≥ 0.15×", raw_rate_of("at_least_once"),
      rate_of("at_least_once"), per_s);
  row("steps/s, exactly_once (pipelined msg/s beside it)", "≥ 0.15×, ≥ 90% of at_least_once",
      raw_rate_of("exactly_once"), rate_of("exactly_once"), per_s);
  md << "\n";

  md << "Targets:\n\n";
  for (const auto& r : results) {
    const auto* alo = StepOf(r, "at_least_once");
    const auto* t_alo = ThroughputOf(r, "at_least_once");
    const auto* t_eos = ThroughputOf(r, "exactly_once");
    if (!alo || !t_alo || !t_eos) continue;
    const auto* eos = StepOf(r, "exactly_once");
    const double raw_alo = RawRateOf(t_alo, r.raw.messages_per_s), raw_eos = RawRateOf(t_eos, r.raw.messages_per_s);
    md << "- " << r.broker << ": step p50 " << Ratio(alo->step.p50, r.raw_round_trip.p50) << " of raw ("
       << Met(alo->step.p50 <= 1.5 * r.raw_round_trip.p50) << "), p99 " << Ratio(alo->step.p99, r.raw_round_trip.p99)
       << " (" << Met(alo->step.p99 <= 3 * r.raw_round_trip.p99) << ")";
    if (eos) {
      md << "; exactly_once step p50 " << Ratio(eos->step.p50, r.raw_round_trip.p50) << " ("
         << Met(eos->step.p50 <= 2 * r.raw_round_trip.p50) << ")";
    }
    md << "; at_least_once " << Num(t_alo->steps_per_s) << " steps/s, " << Ratio(t_alo->steps_per_s, raw_alo)
       << " of raw (" << Met(t_alo->steps_per_s >= 0.15 * raw_alo) << "); exactly_once "
       << Ratio(t_eos->steps_per_s, raw_eos) << " (" << Met(t_eos->steps_per_s >= 0.15 * raw_eos) << "), "
       << absl::StrFormat("%.0f%%", 100 * t_eos->steps_per_s / t_alo->steps_per_s) << " of at_least_once ("
       << Met(t_eos->steps_per_s >= 0.9 * t_alo->steps_per_s) << ").\n";
  }
  md << "\nStep latency is the coordinator's own clock from accepting a one-step task to finishing it:"
        " dispatch, worker pickup, result, state update. The client's submit → result of the same tasks"
        " (two more hops), the CPU behind the throughput runs, and the raw pipelined rate each throughput run is"
        " set against: measured with the same settings right before and after it (the median of those passes,"
        " and their range), as this machine's speed moves by up to ×2 within minutes:\n\n";
  md << "| broker | mode | client submit → result p50 / p99 | tasks × steps | seconds | coordinator CPU | workers' CPU "
        "| machine busy | raw pipelined beside it (range) |\n";
  md << "|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& r : results) {
    for (const auto& t : r.throughput) {
      if (t.profile != "default") continue;
      const auto* s = StepOf(r, t.mode);
      md << "| " << r.broker << " | " << t.mode << " | " << (s ? Ms(s->task.p50) + " / " + Ms(s->task.p99) : "") << " | "
         << Num(t.tasks) << " × 4 | " << Num(t.seconds, 2) << " | " << Num(t.coordinator_cpu_s, 2) << " s | "
         << Num(t.workers_cpu_s, 2) << " s | " << Num(100 * t.machine_busy) << "% | "
         << (t.raw_messages_per_s > 0 ? Num(t.raw_messages_per_s) + " msg/s (" + Num(t.raw_min_per_s) + "–" +
                                            Num(t.raw_max_per_s) + ")"
                                      : "—")
         << " |\n";
    }
  }
  WriteProfilesTable(md, results);

  md << "\n### Concurrency\n\n";
  md << "| broker | tasks in flight in one coordinator | coordinator RSS before | with them | bytes per task | "
        "one worker: calls (2 s each), in flight | worker peak RSS | worker CPU per call | calls/s |\n";
  md << "|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& r : results) {
    md << "| " << r.broker << " | " << Num(r.in_flight.tasks) << " | " << MiB(r.in_flight.rss_before) << " | "
       << MiB(r.in_flight.rss_loaded) << " | " << Num(r.in_flight.bytes_per_task) << " | " << Num(r.worker.calls)
       << ", " << Num(r.worker.max_in_flight) << " | " << MiB(r.worker.peak_rss) << " | "
       << Num(r.worker.cpu_ms_per_call, 3) << " ms | " << Num(r.worker.calls_per_s) << " |\n";
  }

  md << "\n### Scale-out (200 ms agents, up to 1,000 calls in flight per worker)\n\n";
  if (!c.plot_file.empty()) md << "![steps/s by worker processes](" << c.plot_file << ")\n\n";
  md << "| broker | coordinators | workers | steps/s | per worker | machine busy |\n|---|---|---|---|---|---|\n";
  for (const auto& r : results) {
    for (const auto& p : r.scale) {
      md << "| " << r.broker << " | " << p.coordinators << " | " << p.workers << " | " << Num(p.steps_per_s) << " | "
         << Num(p.steps_per_s / p.workers) << " | " << Num(100 * p.machine_busy) << "% |\n";
    }
  }
  md << "\nOne worker holding 1,000 calls of 200 ms can do at most 5,000 steps/s.\n";

  md << "\n### Cost of growth\n\n";
  md << "| broker | fan-out | task latency p50 / p99 (accepted → finished) | tasks parked | coordinator bytes per task |\n";
  md << "|---|---|---|---|---|\n";
  for (const auto& r : results) {
    for (const auto& w : r.widths) {
      md << "| " << r.broker << " | " << w.fan_out << " | " << Ms(w.task.p50) << " / " << Ms(w.task.p99) << " | "
         << Num(w.in_flight_tasks) << " | " << Num(w.bytes_per_task) << " |\n";
    }
  }
  md << "\n| broker | tenants (each with a budget) | steps/s (chain of 4, 0 ms agents) | coordinator RSS after |\n";
  md << "|---|---|---|---|\n";
  for (const auto& r : results) {
    for (const auto& t : r.tenants) {
      md << "| " << r.broker << " | " << Num(t.tenants) << " | " << Num(t.steps_per_s) << " | " << MiB(t.coordinator_rss)
         << " |\n";
    }
  }
}

// Features against the plain chain (the part runs only when named).
void WriteFeatureTable(std::ostringstream& md, const std::vector<BrokerResults>& results) {
  bool any = false;
  for (const auto& r : results) any |= !r.features.empty();
  if (!any) return;
  md << "\n### Features against the plain chain (`--only features`)\n\n";
  md << "Each workflow makes `chain4`'s 4 calls, with a feature (0 ms agents): `routed4` behind `when:` conditions"
        " beside 2 skipped branches; `cached4` on an agent with a result cache, every input new (a lookup, a miss and an insert per"
        " call); `child4` with its middle 2 calls in a child workflow (a child task through the tasks topic, its"
        " result back to the parent); `waited4` with a wait step before its third call, whose signal the client sends"
        " right after the submission (the coordinator keeps it for the step); `asked4`, whose second agent asks a question"
        " (`needs_info`) that another agent's call answers before it runs again (6 calls); `rescoped4`, whose second"
        " agent sends its plan back once (`rescope`, itself the planner) and runs again (5 calls); `acted4` with an"
        " action between its second and third calls (an HTTP POST, payload schema-checked and scanned, to a local"
        " endpoint in the bench process that applies each Idempotency-Key once; every task's one effect is checked)."
        " *Per call*:"
        " accepted → finished of one task at a time, divided by its calls; *calls/s*: tasks submitted at once. Two"
        " alternating rounds of each on one fleet per mode.\n\n";
  md << "| broker | mode | workflow | per call p50 / p99 | per call p50 / raw round trip p50 | calls/s |"
        " coordinator CPU per call |\n|---|---|---|---|---|---|---|\n";
  for (const auto& r : results) {
    for (const auto& x : r.features) {
      md << "| " << r.broker << " | " << x.mode << " | " << x.workflow << " | " << Ms(x.per_call.p50) << " / "
         << Ms(x.per_call.p99) << " | " << Ratio(x.per_call.p50, r.raw_round_trip.p50) << " | " << Num(x.calls_per_s)
         << " | " << Num(x.coordinator_cpu_us_per_call, 1) << " µs |\n";
    }
  }
}

// exactly_once against at_least_once, sustained (the part runs only when named).
void WriteSteadyTable(std::ostringstream& md, const std::vector<BrokerResults>& results) {
  bool any = false;
  for (const auto& r : results) any |= !r.steady.empty();
  if (!any) return;
  md << "\n### exactly_once against at_least_once, sustained (`--only steady`)\n\n";
  md << "One fleet per mode (1 coordinator, 2 workers, 0 ms agents; exactly_once with `commit_policy: adaptive`,"
        " and once more with a `commit_interval` of 300 ms instead of 100), all started first; then"
        " rounds of `chain4` tasks submitted at once, the modes in turn (who goes first rotates by round), so the"
        " shared machine's drift hits them alike. *Steps/s*: from the first submission to the last result;"
        " *of at_least_once*: against the at_least_once run of the same round; *commits*, *time committing*: from"
        " the coordinator's `agentfleet_coordinator_commit_seconds` and `_commit_inputs`, the commits' time as a"
        " share of the run's wall time; *loop waiting*: from `agentfleet_coordinator_commit_wait_seconds_total`,"
        " the share its loop stood still for them (a commit under load runs beside the next batch).\n\n";
  md << "| broker | round | mode | steps | steps/s | of at_least_once | coordinator CPU per step |"
        " commits (inputs each) | time committing | loop waiting |\n|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& r : results) {
    std::map<std::string, std::vector<double>> ratios;  // by mode
    for (const auto& x : r.steady) {
      double alo = 0;
      for (const auto& y : r.steady) {
        if (y.round == x.round && y.mode == "at_least_once") alo = y.steps_per_s;
      }
      double ratio = alo > 0 ? x.steps_per_s / alo : 0;
      if (x.mode != "at_least_once") ratios[x.mode].push_back(ratio);
      md << "| " << r.broker << " | " << x.round << " | " << x.mode << " | " << Num(static_cast<double>(x.steps))
         << " | " << Num(x.steps_per_s) << " | " << (x.mode == "at_least_once" ? "" : Num(100 * ratio) + "%") << " | "
         << Num(x.coordinator_cpu_us_per_step, 1) << " µs | "
         << (x.commits > 0 ? absl::StrCat(Num(x.commits), " (", Num(x.inputs_per_commit), ")") : "") << " | "
         << (x.commits > 0 ? Num(100 * x.commit_share) + "%" : "") << " | "
         << (x.commits > 0 ? Num(100 * x.wait_share) + "%" : "") << " |\n";
    }
    for (auto& [mode, v] : ratios) {
      std::sort(v.begin(), v.end());
      const size_t n = v.size();
      const double median = n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
      md << "| " << r.broker << " | **median** | " << mode << " | | | **" << Num(100 * median) << "%** | | | | |\n";
    }
  }
}

// One task's records among a million others (the part runs only when named).
void WriteLookupTable(std::ostringstream& md, const std::vector<BrokerResults>& results) {
  for (const auto& r : results) {
    if (r.lookup.empty()) continue;
    md << "\n### Reading one task's records (`--only lookup`, " << r.broker << ")\n\n";
    md << "What `agentfleet trace`, `replay`, `fork` and `diff` read first (audit/task_records.h): five `chain4` tasks"
          " ran (exactly_once), then a million events of other tasks were produced (a worker's receipt and"
          " result for each step of four), with a result per 8, then five more tasks ran. The events topic"
          " then held " << Num(static_cast<double>(r.lookup_events)) << " records and all the fleet's topics " << Num(static_cast<double>(r.lookup_records))
       << " records. *Records read*: what the lookup fetched, kept or not; *chunks*: reads of the results"
          " partition, newest first, to find the task's result; *replay*: the records read replay identically"
          " through the engine.\n\n";
    md << "| task | read | time p50 (samples) | records read | chunks | replay |\n|---|---|---|---|---|---|\n";
    for (const auto& x : r.lookup) {
      md << "| " << x.task << " | " << x.how << " | " << Ms(x.ms.p50) << " (" << x.ms.n << ") | "
         << Num(static_cast<double>(x.scanned)) << " | " << (x.result_rounds > 0 ? Num(x.result_rounds) : "—")
         << " | " << (x.identical ? "identical" : "**not identical**") << " |\n";
    }
  }
}

bool HasMainParts(const BrokerResults& r) {
  return !r.steps.empty() || !r.throughput.empty() || r.in_flight.tasks > 0 || r.worker.calls > 0 ||
         !r.scale.empty() || !r.widths.empty() || !r.tenants.empty();
}

// Failover and rebalancing (the parts run only when named).
void WriteGroupTables(std::ostringstream& md, const std::vector<BrokerResults>& results) {
  bool failover = false, rebalance = false;
  for (const auto& r : results) {
    failover |= !r.failover.empty();
    rebalance |= !r.rebalance.empty();
  }
  if (failover) {
    md << "\n### Failover (`--only failover`)\n\n";
    md << "A steady load of one-step tasks (0 ms agents, exactly_once, 2 workers); one member SIGKILLed 5 s in."
          " A task *stalled* if it took more than max(1 s, 10 × the p50 before the kill): its work sat on the"
          " dead member's partitions. *SIGKILL → first stalled task done* is when a survivor (or the restarted"
          " replica) had taken them over and finished the first of that work.\n\n";
    md << "| broker | member killed | group settings | p50 before | SIGKILL → first stalled task done | longest wait"
          " | tasks stalled |\n|---|---|---|---|---|---|---|\n";
    for (const auto& r : results) {
      for (const auto& f : r.failover) {
        md << "| " << r.broker << " | " << f.scenario << " | " << f.settings << " | " << Ms(f.baseline_p50_ms) << " | "
           << Num(f.kill_to_first_ms / 1000, 1) << " s | " << Num(f.longest_wait_ms / 1000, 1) << " s | "
           << Num(f.stalled) << " |\n";
      }
    }
  }
  if (rebalance) {
    md << "\n### Scaling a worker pool under load (`--only rebalance`)\n\n";
    md << "One-step tasks with 2 s agents submitted at a steady rate to a pool of 2 workers; 2 more started,"
          " then SIGTERMed 12 s later (as KEDA and Kubernetes do). For the 8 s after each event: the lowest"
          " 250 ms of results as a share of the submitted rate, the longest time without any result, and the"
          " wait (submit → result) of the tasks submitted then. *Calls run twice*: calls the workers started"
          " beyond one per task over the whole run (both events), from the totals each worker logs when it"
          " stops — work in flight on a partition that was revoked and fetched again from its committed"
          " offset.\n\n";
    md << "| broker | assignor | event | rate | lowest 250 ms | longest gap | wait p50 / p99 / max | p50 before |"
          " calls run twice |\n";
    md << "|---|---|---|---|---|---|---|---|---|\n";
    for (const auto& r : results) {
      for (const auto& b : r.rebalance) {
        md << "| " << r.broker << " | " << b.assignor << " | " << b.event << " | " << Num(b.rate) << "/s | "
           << Num(100 * b.min_share) << "% | " << Ms(b.longest_gap_ms) << " | " << Ms(b.latency.p50) << " / "
           << Ms(b.latency.p99) << " / " << Ms(b.max_ms) << " | " << Ms(b.baseline_p50_ms) << " | "
           << Num(b.calls_redone) << " |\n";
      }
    }
  }
}

}  // namespace

std::string BenchMarkdown(const std::vector<BrokerResults>& results, const ReportContext& c) {
  std::ostringstream md;
  md << "## End-to-end suite (`agentfleet bench`)\n\n";
  md << "Run of " << c.date << " on " << c.machine << ": `" << c.command << "`.";
  if (c.quick) md << " **Quick mode: counts too small to quote; this checks the suite runs.**";
  md << " The broker, the fleet processes and the client share the machine. Agents are simulated"
        " (docs/configuration.md), so the fleet itself is measured. Every ratio divides a fleet figure"
        " by the raw librdkafka figure measured on the same broker in the same run, with the same"
        " client settings (`kafka/raw_kafka.cc`: client → ping topic → an echo thread's consumer"
        " and producer → pong topic → client).\n\n";

  bool main_parts = false;
  for (const auto& r : results) main_parts |= HasMainParts(r);
  if (main_parts) WriteMainTables(md, results, c);
  WriteGroupTables(md, results);
  WriteFeatureTable(md, results);
  WriteSteadyTable(md, results);
  WriteLookupTable(md, results);
  return md.str();
}

absl::Status WriteBenchSection(const std::string& path, const std::string& section) {
  std::string text;
  if (std::ifstream in(path); in) text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  std::string block = absl::StrCat(kBegin, "\n\n", section, "\n", kEnd);
  size_t b = text.find(kBegin), e = text.find(kEnd);
  if (b != std::string::npos && e != std::string::npos && e > b) {
    text.replace(b, e + std::string(kEnd).size() - b, block);
  } else {
    if (!text.empty() && text.back() != '\n') text += "\n";
    text += (text.empty() ? "" : "\n") + block + "\n";
  }
  std::ofstream out(path);
  out << text;
  if (!out) return absl::UnavailableError("cannot write " + path);
  return absl::OkStatus();
}

absl::Status PlotScaleOut(const std::vector<BrokerResults>& results, const std::string& svg_path,
                          const std::string& work_dir) {
  if (!std::filesystem::exists("/usr/bin/gnuplot")) {
    return absl::FailedPreconditionError("no /usr/bin/gnuplot (scripts/install-deps.sh installs gnuplot-nox)");
  }
  std::string script = work_dir + "/scale.gp";
  std::ofstream gp(script);
  gp << "set terminal svg size 720,420 dynamic font 'sans,12' background rgb 'white'\n"
     << "set output '" << svg_path << "'\n"
     << "set title 'Scale-out: 200 ms simulated agents'\n"
     << "set xlabel 'worker processes'\nset ylabel 'steps/s'\n"
     << "set xtics (1, 2, 4)\nset key top left\nset grid\nset yrange [0:*]\n";
  std::vector<std::string> plots;
  int series = 0;
  for (const auto& r : results) {
    for (int coordinators : {1, 2}) {
      std::string data = absl::StrCat(work_dir, "/scale-", series++, ".dat");
      std::ofstream d(data);
      for (const auto& p : r.scale) {
        if (p.coordinators == coordinators) d << p.workers << " " << p.steps_per_s << "\n";
      }
      plots.push_back(absl::StrCat("'", data, "' using 1:2 with linespoints lw 2 title '", r.broker, ", ",
                                   coordinators, " coordinator", coordinators > 1 ? "s" : "", "'"));
    }
    // Linear from the one-worker point: what perfect scaling would give.
    for (const auto& p : r.scale) {
      if (p.coordinators == 1 && p.workers == 1) {
        plots.push_back(absl::StrCat("[1:4] ", p.steps_per_s, "*x with lines dt 2 lc rgb 'gray' title '", r.broker,
                                     ", linear'"));
      }
    }
  }
  gp << "plot ";
  for (size_t i = 0; i < plots.size(); ++i) gp << (i ? ", \\\n     " : "") << plots[i];
  gp << "\n";
  gp.close();
  auto pid = Spawn({"/usr/bin/gnuplot", script}, SpawnOptions::LogTo(work_dir + "/gnuplot.log"));
  if (!pid.ok()) return pid.status();
  auto code = WaitExit(*pid, absl::Seconds(60));
  if (!code.ok()) return code.status();
  if (*code != 0) return absl::InternalError(absl::StrCat("gnuplot exited ", *code, " (", work_dir, "/gnuplot.log)"));
  return absl::OkStatus();
}

}  // namespace agentfleet
