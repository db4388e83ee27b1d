#include "serve/host_guard.h"

#include <arpa/inet.h>

namespace bnlab::serve {
namespace {

bool is_ip_literal(std::string_view name) {
  unsigned char addr[16];
  const std::string s(name);
  if (s.size() > 2 && s.front() == '[' && s.back() == ']') return inet_pton(AF_INET6, s.substr(1, s.size() - 2).c_str(), addr) == 1;
  return inet_pton(AF_INET, s.c_str(), addr) == 1;
}

std::string bracketed(const std::string& host) {
  if (host.find(':') == std::string::npos) return host;
  std::string b = "[";
  b += host;
  b += ']';
  return b;
}

}  // namespace

bool HostGuard::allows_host(std::string_view host_header) const {
  std::string suffix = ":";  // (appended: GCC 12's -Wrestrict misfires on "literal" + std::string)
  suffix += std::to_string(port_);
  if (!host_header.ends_with(suffix)) return false;
  const std::string_view name = host_header.substr(0, host_header.size() - suffix.size());
  if (name == bracketed(host_)) return true;
  const bool loopback = host_ == "127.0.0.1" || host_ == "::1" || host_ == "localhost";
  if (loopback && (name == "localhost" || name == "127.0.0.1" || name == "[::1]")) return true;
  const bool wildcard = host_ == "0.0.0.0" || host_ == "::";
  return wildcard && is_ip_literal(name);
}

bool HostGuard::allows_origin(std::string_view origin) const {
  if (origin.empty()) return true;
  constexpr std::string_view scheme = "http://";
  return origin.starts_with(scheme) && allows_host(origin.substr(scheme.size()));
}

}  // namespace bnlab::serve
