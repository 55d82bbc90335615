// The checks of the native test executables: count what passes, print what fails. Each
// executable prints "N passed, N failed" at the end and exits non-zero on any failure.
#pragma once

#include <cstdio>
#include <functional>
#include <string>

namespace siamese::test {

inline int passed = 0;
inline int failed = 0;

inline void check(bool ok, const std::string& what) {
  if (ok) {
    ++passed;
  } else {
    ++failed;
    std::fprintf(stderr, "FAIL: %s\n", what.c_str());
  }
}

// `body` throws an Exception whose message contains `mentions` (any message when empty).
template <typename Exception>
void checkThrows(const std::function<void()>& body, const std::string& what, const std::string& mentions = "") {
  try {
    body();
    check(false, what + " (did not throw)");
  } catch (const Exception& e) {
    check(std::string(e.what()).find(mentions) != std::string::npos, what + " (message: " + e.what() + ")");
  }
}

// Prints the tally; the exit status of main.
inline int summary() {
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}

}  // namespace siamese::test
