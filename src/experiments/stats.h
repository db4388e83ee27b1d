// Summary statistics for experiment reports. NaN inputs are the caller's to leave out.
#pragma once

#include <vector>

namespace bnlab::experiments {

double mean(const std::vector<double>& v);  // NaN for an empty vector
// Sample standard deviation (divides by n - 1, as numpy's std(ddof=1)); 0 for one value.
double stddev(const std::vector<double>& v);
// The q-th percentile (q in [0, 100]) with linear interpolation between the closest ranks:
// numpy.percentile's default ("linear"). NaN for an empty vector.
double percentile(std::vector<double> v, double q);

// Mean and (population) standard deviation of n floats, accumulated in double.
struct Moments {
  double mean = 0, std = 0;
};
Moments moments(const float* x, long long n);

}  // namespace bnlab::experiments
