// Test helpers for inputs that must be refused: the InputError a load throws (a test
// failure, and an empty error, when it accepts the input), and whether its message says
// a text. Test thread only; a failure is reported through GoogleTest, never thrown.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "engine/core/input_error.h"
#include "tests/common/process.h"

namespace kurier::test {

// The InputError `load()` throws; ADD_FAILURE (naming `input`) and an empty one if none.
template <typename Load>
engine::InputError input_error_of(Load&& load, const std::string& input) {
  try {
    load();
  } catch (const engine::InputError& e) {
    return e;
  }
  ADD_FAILURE() << "accepted: " << input;
  return engine::InputError("", 0, "", "");
}

// Writes `text` to `file`, then returns the InputError `load(file)` throws (as above).
template <typename Load>
engine::InputError file_input_error(const std::filesystem::path& file, const std::string& text, Load&& load) {
  write_file(file, text);
  return input_error_of([&] { load(file); }, text);
}

// Whether the error's message contains `text`.
inline bool says(const engine::InputError& e, const std::string& text) {
  return std::string(e.what()).find(text) != std::string::npos;
}

}  // namespace kurier::test
