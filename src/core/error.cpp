#include "bnlab/error.h"

namespace bnlab {

void fail(std::string_view where, std::string_view field, std::string_view what) {
  std::string message(where);
  if (!field.empty()) message.append(": ").append(field);
  message.append(": ").append(what);
  throw Error(message);
}

}  // namespace bnlab
