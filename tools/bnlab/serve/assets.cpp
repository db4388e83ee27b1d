#include "serve/assets.h"

namespace bnlab::serve {

const EmbeddedAsset* find_asset(std::string_view path) {
  if (path == "/") path = "/index.html";
  for (size_t i = 0; i < detail::kAssetCount; ++i)
    if (path == detail::kAssets[i].path) return &detail::kAssets[i];
  return nullptr;
}

const char* content_type(std::string_view path) {
  if (path == "/" || path.ends_with(".html")) return "text/html; charset=utf-8";
  if (path.ends_with(".js")) return "text/javascript; charset=utf-8";
  if (path.ends_with(".css")) return "text/css; charset=utf-8";
  if (path.ends_with(".svg")) return "image/svg+xml";
  return "application/octet-stream";
}

}  // namespace bnlab::serve
