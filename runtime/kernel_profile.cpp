#include "runtime/kernel_profile.h"

#include <algorithm>

namespace moat::runtime {

namespace {
thread_local KernelProfile* g_active = nullptr;
}  // namespace

void KernelProfile::add(const std::string& kernel, double ms) {
  KernelTime& k = kernels_[kernel];
  k.name = kernel;
  ++k.launches;
  k.total_ms += ms;
}

std::vector<KernelTime> KernelProfile::by_time() const {
  std::vector<KernelTime> out;
  for (const auto& [name, k] : kernels_) out.push_back(k);
  std::stable_sort(out.begin(), out.end(), [](const KernelTime& a, const KernelTime& b) { return a.total_ms > b.total_ms; });
  return out;
}

double KernelProfile::total_ms() const {
  double total = 0;
  for (const auto& [name, k] : kernels_) total += k.total_ms;
  return total;
}

int64_t KernelProfile::launches() const {
  int64_t total = 0;
  for (const auto& [name, k] : kernels_) total += k.launches;
  return total;
}

ProfileScope::ProfileScope(KernelProfile& profile) : previous_(g_active) { g_active = &profile; }

ProfileScope::~ProfileScope() { g_active = previous_; }

KernelProfile* active_profile() { return g_active; }

}  // namespace moat::runtime
