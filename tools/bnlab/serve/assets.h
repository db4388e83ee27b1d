// The page's files (web/), compiled in by cmake/embed_assets.cmake.
#pragma once

#include <cstddef>
#include <string_view>

namespace bnlab::serve {

struct EmbeddedAsset {
  const char* path;  // "/index.html"
  const char* data;
  size_t size;
};

// The asset served at `path` ("/" is /index.html), or null.
const EmbeddedAsset* find_asset(std::string_view path);
// Its Content-Type, from the name's extension.
const char* content_type(std::string_view path);

namespace detail {
extern const EmbeddedAsset kAssets[];
extern const size_t kAssetCount;
}  // namespace detail

}  // namespace bnlab::serve
