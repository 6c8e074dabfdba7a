// libFuzzer target: recipients.csv intake. The CSV reader (engine/intake/csv.h) on any
// bytes, then each record's first field through the address parser
// (engine/intake/address.h), as intake does. Bad input must be an InputError, nothing else.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "engine/intake/address.h"
#include "engine/intake/csv.h"
#include "engine/core/input_error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  kurier::engine::CsvReader reader(in, "recipients.csv");
  std::vector<std::string> fields;
  try {
    std::size_t last_line = 0;
    while (reader.next(fields)) {
      if (reader.line() <= last_line) __builtin_trap();  // lines only move forward
      last_line = reader.line();
      std::size_t bytes = 0;
      for (const auto& f : fields) bytes += f.size();
      if (bytes > kurier::engine::CsvReader::kMaxRecordBytes) __builtin_trap();
      if (fields.empty()) continue;
      auto check = kurier::engine::parse_address(fields[0]);
      if (check.address.has_value() == !check.problem.empty()) __builtin_trap();
      if (check.address) {
        if (check.address->local.size() > kurier::engine::kMaxLocalPartBytes) __builtin_trap();
        (void)kurier::engine::normalize_address(fields[0]);
      }
    }
  } catch (const kurier::engine::InputError&) {
    // bad input, reported with file and line: expected
  }
  return 0;
}
