// Plain-text layouts: a table with aligned columns (list, endpoints), and "key: value" lines
// with the values aligned (get, stats).
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace shmd::ctl {

class Table {
 public:
  enum class Align { kLeft, kRight };
  struct Column {
    std::string title;
    Align align = Align::kLeft;
  };

  explicit Table(std::vector<Column> columns) : columns_(std::move(columns)) {}

  // Missing cells are blank; extra cells are dropped.
  void AddRow(std::vector<std::string> cells);
  bool empty() const { return rows_.empty(); }

  // Title row then rows, columns two spaces apart, every line starting with `indent`.
  std::string Render(const std::string& indent = "") const;

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;
};

class Fields {
 public:
  void Add(std::string key, std::string value);
  // Text that follows the fields as it is (e.g. an indented Table).
  void Append(std::string text) { trailer_ += std::move(text); }

  std::string Render() const;

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
  std::string trailer_;
};

}  // namespace shmd::ctl
