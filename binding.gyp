{
  # The same sources and the same LibTorch finder as CMakeLists.txt; cmake-js is the main build.
  "targets": [
    {
      "target_name": "siamese_torch",
      "sources": ["<!@(node -p \"require('fs').readFileSync('native/sources.txt', 'utf8').trim().split('\\n').join(' ')\")"],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_CPP_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        "NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED",
        "<!@(node scripts/find-libtorch.js --gyp defines)"
      ],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-frtti", "-Wall", "-Wextra", "<!@(node scripts/find-libtorch.js --gyp cflags)"],
      "ldflags": ["<!@(node scripts/find-libtorch.js --gyp ldflags)"],
      "libraries": ["<!@(node scripts/find-libtorch.js --gyp libraries)", "-lz"]
    }
  ]
}
