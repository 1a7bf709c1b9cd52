// GRID, RANDOM and TPE (sweep_sampling.h). TPE follows Bergstra, Bardenet, Bengio and Kégl,
// "Algorithms for Hyper-Parameter Optimization" (NIPS 2011) and hyperopt's adaptive Parzen
// estimator: each parameter is modelled on its own, by a mixture of one truncated normal
// per observation plus one for the prior.
#include "scheduler/sweep_sampling.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace drover::scheduler {
namespace {

using v1::ParameterDistribution;
using v1::ParameterValue;
using v1::Sampling;
using v1::SweepSpec;

constexpr double kPi = 3.14159265358979323846;

// SplitMix64 (Steele, Lea and Flood 2014), one stream per (seed, trial).
class SplitMix64 {
 public:
  SplitMix64(uint64_t seed, uint64_t stream) : state_(Mix(Mix(seed) + stream)) {}

  uint64_t Next() { return Mix(state_ += 0x9E3779B97F4A7C15ULL); }

  // In [0, 1), a multiple of 2^-53: exact on every platform.
  double Unit() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

  // In [0, n), unbiased (rejection of the top partial range); 0 when n is 0.
  uint64_t Below(uint64_t n) {
    if (n == 0) return 0;
    const uint64_t limit = std::numeric_limits<uint64_t>::max() -
                           std::numeric_limits<uint64_t>::max() % n;
    uint64_t x;
    do {
      x = Next();
    } while (x >= limit);
    return x % n;
  }

  // A standard normal draw (Box-Muller, one value per pair of uniforms).
  double Gaussian() {
    const double u1 = 1.0 - Unit();  // (0, 1]
    const double u2 = Unit();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * kPi * u2);
  }

 private:
  static uint64_t Mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }

  uint64_t state_;
};

ParameterValue Number(double d) {
  ParameterValue v;
  v.set_number(d);
  return v;
}

double Clamp(double x, double low, double high) { return std::min(std::max(x, low), high); }

double Quantize(double x, double q) { return std::round(x / q) * q; }

// One draw from a distribution, as RANDOM (and TPE's start-up trials) make it.
ParameterValue Draw(const ParameterDistribution& d, SplitMix64& rng) {
  switch (d.kind_case()) {
    case ParameterDistribution::kChoice:
      if (d.choice().values().empty()) break;  // not for a valid spec
      return d.choice().values(static_cast<int>(rng.Below(d.choice().values_size())));
    case ParameterDistribution::kUniform: {
      const double lo = d.uniform().min(), hi = d.uniform().max();
      return Number(Clamp(lo + rng.Unit() * (hi - lo), lo, hi));
    }
    case ParameterDistribution::kLoguniform: {
      const double lo = d.loguniform().min(), hi = d.loguniform().max();
      return Number(Clamp(std::exp(lo + rng.Unit() * (hi - lo)), std::exp(lo), std::exp(hi)));
    }
    case ParameterDistribution::kNormal:
      return Number(d.normal().mu() + d.normal().sigma() * rng.Gaussian());
    case ParameterDistribution::kQuniform: {
      const double lo = d.quniform().min(), hi = d.quniform().max();
      return Number(Quantize(Clamp(lo + rng.Unit() * (hi - lo), lo, hi), d.quniform().q()));
    }
    case ParameterDistribution::kRandint:
      return Number(static_cast<double>(rng.Below(static_cast<uint64_t>(d.randint().upper()))));
    case ParameterDistribution::KIND_NOT_SET:
      break;
  }
  return Number(0);  // not reached for a valid spec
}

// The search space in name order (the order of every draw and of the grid's odometer).
std::vector<std::pair<std::string, const ParameterDistribution*>> Ordered(const SweepSpec& spec) {
  std::vector<std::pair<std::string, const ParameterDistribution*>> space;
  for (const auto& [name, dist] : spec.search_space()) space.emplace_back(name, &dist);
  std::sort(space.begin(), space.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  return space;
}

ParameterAssignment GridPoint(const SweepSpec& spec, int64_t index) {
  auto space = Ordered(spec);
  ParameterAssignment point;
  // The last name changes fastest.
  for (auto it = space.rbegin(); it != space.rend(); ++it) {
    const v1::Choice& choice = it->second->choice();
    point[it->first] = choice.values(static_cast<int>(index % choice.values_size()));
    index /= choice.values_size();
  }
  return point;
}

ParameterAssignment RandomPoint(const SweepSpec& spec, SplitMix64& rng) {
  ParameterAssignment point;
  for (const auto& [name, dist] : Ordered(spec)) point[name] = Draw(*dist, rng);
  return point;
}

// --- TPE ---

double LogSumExp(const std::vector<double>& xs) {
  double top = -std::numeric_limits<double>::infinity();
  for (double x : xs) top = std::max(top, x);
  if (std::isinf(top)) return top;
  double sum = 0;
  for (double x : xs) sum += std::exp(x - top);
  return top + std::log(sum);
}

// log Φ(b) - Φ(a) for the standard normal, a < b.
double LogNormalMass(double a, double b) {
  const double mass = 0.5 * (std::erf(b / std::sqrt(2.0)) - std::erf(a / std::sqrt(2.0)));
  return std::log(std::max(mass, 1e-300));
}

// A mixture of normals truncated to [low, high] (infinite bounds: not truncated), equal
// weights: hyperopt's adaptive Parzen estimator over `observations` and the prior.
class Parzen {
 public:
  Parzen(std::vector<double> observations, double prior_mu, double prior_sigma, double low,
         double high)
      : low_(low), high_(high) {
    std::vector<double> mus = std::move(observations);
    for (double& x : mus) x = Clamp(x, low, high);
    mus.push_back(prior_mu);
    std::sort(mus.begin(), mus.end());
    const size_t n = mus.size();
    const double max_sigma = prior_sigma;
    const double min_sigma = prior_sigma / std::min(100.0, 1.0 + static_cast<double>(n));
    bool prior_placed = false;
    for (size_t i = 0; i < n; ++i) {
      double sigma;
      if (!prior_placed && mus[i] == prior_mu) {
        sigma = prior_sigma;  // the prior keeps its own width
        prior_placed = true;
      } else {
        const double left = i > 0 ? mus[i] - mus[i - 1] : 0;
        const double right = i + 1 < n ? mus[i + 1] - mus[i] : 0;
        sigma = Clamp(std::max(left, right), min_sigma, max_sigma);
      }
      components_.push_back({mus[i], sigma,
                             std::isinf(low) ? 0.0
                                             : LogNormalMass((low - mus[i]) / sigma,
                                                             (high - mus[i]) / sigma)});
    }
  }

  double Sample(SplitMix64& rng) const {
    const Component& c = components_[rng.Below(components_.size())];
    for (int attempt = 0; attempt < 100; ++attempt) {
      const double x = c.mu + c.sigma * rng.Gaussian();
      if (x >= low_ && x <= high_) return x;
    }
    return Clamp(c.mu, low_, high_);
  }

  double LogDensity(double x) const {
    std::vector<double> terms;
    terms.reserve(components_.size());
    for (const Component& c : components_) {
      const double z = (x - c.mu) / c.sigma;
      terms.push_back(-0.5 * z * z - std::log(c.sigma) - 0.5 * std::log(2 * kPi) - c.log_mass);
    }
    return LogSumExp(terms) - std::log(static_cast<double>(components_.size()));
  }

 private:
  struct Component {
    double mu;
    double sigma;
    double log_mass;  // of [low, high] under this normal
  };
  double low_;
  double high_;
  std::vector<Component> components_;
};

// How TPE sees a numeric parameter: a real "internal" value in [low, high] with a prior,
// and the way back to the value the script gets.
struct NumericModel {
  double low, high, prior_mu, prior_sigma;
  // The internal value of a value the script got, if it fits the distribution.
  std::optional<double> Inside(const ParameterDistribution& d, const ParameterValue& v) const {
    if (!v.has_number() || !std::isfinite(v.number())) return std::nullopt;
    if (d.has_loguniform()) {
      if (!(v.number() > 0)) return std::nullopt;
      return std::log(v.number());
    }
    return v.number();
  }
  ParameterValue Outside(const ParameterDistribution& d, double x) const {
    switch (d.kind_case()) {
      case ParameterDistribution::kLoguniform:
        return Number(Clamp(std::exp(x), std::exp(low), std::exp(high)));
      case ParameterDistribution::kQuniform:
        return Number(Quantize(x, d.quniform().q()));
      case ParameterDistribution::kRandint:
        return Number(Clamp(std::round(x), 0, static_cast<double>(d.randint().upper() - 1)));
      default:
        return Number(x);
    }
  }
};

NumericModel ModelOf(const ParameterDistribution& d) {
  const double inf = std::numeric_limits<double>::infinity();
  switch (d.kind_case()) {
    case ParameterDistribution::kUniform:
      return {d.uniform().min(), d.uniform().max(), 0.5 * (d.uniform().min() + d.uniform().max()),
              d.uniform().max() - d.uniform().min()};
    case ParameterDistribution::kLoguniform:
      return {d.loguniform().min(), d.loguniform().max(),
              0.5 * (d.loguniform().min() + d.loguniform().max()),
              d.loguniform().max() - d.loguniform().min()};
    case ParameterDistribution::kQuniform:
      return {d.quniform().min(), d.quniform().max(),
              0.5 * (d.quniform().min() + d.quniform().max()),
              d.quniform().max() - d.quniform().min()};
    case ParameterDistribution::kRandint: {
      const double hi = static_cast<double>(d.randint().upper()) - 0.5;
      return {-0.5, hi, 0.5 * (hi - 0.5), hi + 0.5};
    }
    case ParameterDistribution::kNormal:
      return {-inf, inf, d.normal().mu(), d.normal().sigma()};
    default:
      return {0, 1, 0.5, 1};
  }
}

ParameterValue TpeNumeric(const ParameterDistribution& d, const std::string& name,
                          const std::vector<const FinishedTrial*>& good,
                          const std::vector<const FinishedTrial*>& bad, int candidates,
                          SplitMix64& rng) {
  const NumericModel m = ModelOf(d);
  auto observations = [&](const std::vector<const FinishedTrial*>& trials) {
    std::vector<double> xs;
    for (const FinishedTrial* t : trials) {
      auto it = t->parameters.find(name);
      if (it == t->parameters.end()) continue;
      if (std::optional<double> x = m.Inside(d, it->second)) xs.push_back(*x);
    }
    return xs;
  };
  const Parzen l(observations(good), m.prior_mu, m.prior_sigma, m.low, m.high);
  const Parzen g(observations(bad), m.prior_mu, m.prior_sigma, m.low, m.high);
  double best_x = 0;
  double best_score = -std::numeric_limits<double>::infinity();
  for (int i = 0; i < candidates; ++i) {
    const double x = l.Sample(rng);
    const double score = l.LogDensity(x) - g.LogDensity(x);
    if (i == 0 || score > best_score) {
      best_x = x;
      best_score = score;
    }
  }
  return m.Outside(d, best_x);
}

ParameterValue TpeChoice(const v1::Choice& choice, const std::string& name,
                         const std::vector<const FinishedTrial*>& good,
                         const std::vector<const FinishedTrial*>& bad, int candidates,
                         SplitMix64& rng) {
  const int k = choice.values_size();
  if (k == 0) return ParameterValue();  // not for a valid spec
  std::map<std::string, int> position;
  for (int i = 0; i < k; ++i) position[FormatParameterValue(choice.values(i))] = i;
  // Counts plus a prior weight of 1 per value, as hyperopt's categorical posterior.
  auto weights = [&](const std::vector<const FinishedTrial*>& trials) {
    std::vector<double> w(k, 1.0);
    for (const FinishedTrial* t : trials) {
      auto it = t->parameters.find(name);
      if (it == t->parameters.end()) continue;
      auto at = position.find(FormatParameterValue(it->second));
      if (at != position.end()) w[at->second] += 1;
    }
    double sum = 0;
    for (double x : w) sum += x;
    for (double& x : w) x /= sum;
    return w;
  };
  const std::vector<double> l = weights(good);
  const std::vector<double> g = weights(bad);
  int best = 0;
  double best_score = -std::numeric_limits<double>::infinity();
  for (int i = 0; i < candidates; ++i) {
    // Draw from l by inverting its cumulative weights.
    double u = rng.Unit();
    int pick = k - 1;
    for (int j = 0; j < k; ++j) {
      if (u < l[j]) {
        pick = j;
        break;
      }
      u -= l[j];
    }
    const double score = l[pick] / g[pick];
    if (i == 0 || score > best_score) {
      best = pick;
      best_score = score;
    }
  }
  return choice.values(best);
}

ParameterAssignment TpePoint(const SweepSpec& spec, const std::vector<FinishedTrial>& finished,
                             SplitMix64& rng) {
  std::vector<const FinishedTrial*> trials;
  for (const FinishedTrial& t : finished) {
    if (std::isfinite(t.result)) trials.push_back(&t);
  }
  const v1::TpeOptions& tpe = spec.sampling().tpe();
  if (trials.size() < static_cast<size_t>(std::max(tpe.n_startup_trials(), 2))) {
    return RandomPoint(spec, rng);
  }
  const bool maximize = spec.primary_metric_goal() == v1::MAXIMIZE;
  // Best first; equal results by trial index.
  std::sort(trials.begin(), trials.end(),
            [maximize](const FinishedTrial* a, const FinishedTrial* b) {
              if (a->result != b->result) {
                return maximize ? a->result > b->result : a->result < b->result;
              }
              return a->index < b->index;
            });
  const size_t n = trials.size();
  const size_t n_good = std::clamp<size_t>(
      static_cast<size_t>(std::ceil(tpe.gamma() * static_cast<double>(n))), 1, n - 1);
  const std::vector<const FinishedTrial*> good(trials.begin(), trials.begin() + n_good);
  const std::vector<const FinishedTrial*> bad(trials.begin() + n_good, trials.end());

  ParameterAssignment point;
  for (const auto& [name, dist] : Ordered(spec)) {
    point[name] = dist->has_choice()
                      ? TpeChoice(dist->choice(), name, good, bad, tpe.n_ei_candidates(), rng)
                      : TpeNumeric(*dist, name, good, bad, tpe.n_ei_candidates(), rng);
  }
  return point;
}

}  // namespace

absl::StatusOr<TrialProposal> ProposeTrial(const SweepSpec& spec, int64_t index,
                                           const std::vector<FinishedTrial>& finished) {
  if (index < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("trial index ", index, " is negative; trials count from 0"));
  }
  TrialProposal proposal;
  if (index >= spec.max_total_trials()) {
    proposal.exhausted = true;
    return proposal;
  }
  SplitMix64 rng(spec.sampling().seed(), static_cast<uint64_t>(index));
  switch (spec.sampling().method()) {
    case Sampling::GRID:
      if (index >= GridSize(spec)) {
        proposal.exhausted = true;
        return proposal;
      }
      proposal.parameters = GridPoint(spec, index);
      break;
    case Sampling::TPE:
      proposal.parameters = TpePoint(spec, finished, rng);
      break;
    default:
      proposal.parameters = RandomPoint(spec, rng);
      break;
  }
  return proposal;
}

}  // namespace drover::scheduler
