#include "server/shmdctl/table.h"

#include <algorithm>

namespace shmd::ctl {

void Table::AddRow(std::vector<std::string> cells) {
  cells.resize(columns_.size());
  rows_.push_back(std::move(cells));
}

std::string Table::Render(const std::string& indent) const {
  std::vector<size_t> width(columns_.size());
  for (size_t c = 0; c < columns_.size(); ++c) {
    width[c] = columns_[c].title.size();
    for (const auto& row : rows_) width[c] = std::max(width[c], row[c].size());
  }
  std::string out;
  auto line = [&](const auto& cell_of) {
    std::string text = indent;
    for (size_t c = 0; c < columns_.size(); ++c) {
      const std::string& cell = cell_of(c);
      const std::string pad(width[c] - cell.size(), ' ');
      if (c > 0) text += "  ";
      text += columns_[c].align == Align::kRight ? pad + cell : cell + pad;
    }
    text.erase(text.find_last_not_of(' ') + 1);  // no trailing blanks after the last column
    out += text + "\n";
  };
  line([&](size_t c) -> const std::string& { return columns_[c].title; });
  for (const auto& row : rows_) line([&](size_t c) -> const std::string& { return row[c]; });
  return out;
}

void Fields::Add(std::string key, std::string value) {
  fields_.emplace_back(std::move(key), std::move(value));
}

std::string Fields::Render() const {
  size_t width = 0;
  for (const auto& [key, value] : fields_) width = std::max(width, key.size());
  std::string out;
  for (const auto& [key, value] : fields_) {
    out += key + ":" + std::string(width - key.size() + 2, ' ') + value + "\n";
  }
  return out + trailer_;
}

}  // namespace shmd::ctl
