// A small, strict JSON reader for file headers (safetensors). Plain C++, no LibTorch, so that
// the model-file reader can be fuzzed on its own. Depth and the number of values are bounded, so
// memory stays within a small multiple of the text; any error throws std::invalid_argument with
// the byte offset.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace siamese::core {

struct Json {
  enum class Kind { Null, Bool, Number, String, Array, Object };
  Kind kind = Kind::Null;
  bool boolean = false;
  double number = 0;
  bool isInteger = false;  // the number was written without fraction or exponent
  int64_t integer = 0;     // its value, when isInteger and it fits
  std::string string;
  std::vector<Json> array;
  std::vector<std::pair<std::string, Json>> object;  // in file order; keys are unique

  const Json* find(std::string_view key) const;
};

Json parseJson(std::string_view text);

// "text" with JSON escapes, quotes included.
std::string jsonQuote(std::string_view text);

// A finite double as the shortest text that reads back to the same value (%.17g): for JSON
// values and for metadata strings alike.
std::string jsonNumber(double value);

}  // namespace siamese::core
