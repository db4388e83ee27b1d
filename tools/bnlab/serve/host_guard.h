// Against DNS rebinding: a page from evil.example whose name is made to resolve to 127.0.0.1
// can reach the server, but its requests carry "Host: evil.example:<port>" and an Origin of its
// own. The server answers only requests naming it: Host is its address with the port
// ("127.0.0.1:8080", "localhost:8080" for a loopback server, "[::1]:8080"), and Origin, when
// sent, is http:// and such a Host. Bound to a wildcard address (0.0.0.0, ::), any IP literal
// with the port is accepted, but no name: a rebinding attack needs a name.
#pragma once

#include <string>
#include <string_view>

namespace bnlab::serve {

class HostGuard {
 public:
  HostGuard(std::string host, int port) : host_(std::move(host)), port_(port) {}
  bool allows_host(std::string_view host_header) const;
  bool allows_origin(std::string_view origin) const;  // an empty Origin (not sent) is allowed

 private:
  std::string host_;
  int port_;
};

}  // namespace bnlab::serve
