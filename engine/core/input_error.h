// The error for bad user input (campaign.toml, recipients.csv, template.eml,
// kurier.toml): names the file, the line and the field, so the CLI can print
// "recipients.csv:17: field 'email': not a valid address" and exit 2.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>

namespace kurier::engine {

class InputError : public std::runtime_error {
 public:
  InputError(std::string file, std::size_t line, std::string field, const std::string& message)
      : std::runtime_error(format(file, line, field, message)),
        file_(std::move(file)),
        line_(line),
        field_(std::move(field)) {}

  const std::string& file() const { return file_; }
  std::size_t line() const { return line_; }  // 1-based; 0 = the file as a whole
  const std::string& field() const { return field_; }

 private:
  static std::string format(const std::string& file, std::size_t line, const std::string& field,
                            const std::string& message) {
    // Appends only: g++ 12 -O3 warns (-Wrestrict, a false positive) on "literal" + string&&.
    std::string out = file;
    if (line > 0) out.append(":").append(std::to_string(line));
    out.append(": ");
    if (!field.empty()) out.append("field '").append(field).append("': ");
    return out.append(message);
  }
  std::string file_;
  std::size_t line_;
  std::string field_;
};

}  // namespace kurier::engine
