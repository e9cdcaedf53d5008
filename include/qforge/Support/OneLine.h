//===- OneLine.h - Error messages on one line -------------------*- C++ -*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// Error messages quote names and bytes from the files being read; a damaged or
// hostile file can put newlines and control characters there. Every reader
// passes its message through oneLine() before returning it, so a message is
// always one line of printable text.
//
//===----------------------------------------------------------------------===//

#ifndef QFORGE_SUPPORT_ONELINE_H
#define QFORGE_SUPPORT_ONELINE_H

#include <string>

namespace qforge {

/// `s` with control characters (below 0x20, and 0x7f) replaced by spaces and
/// trailing spaces removed.
inline std::string oneLine(std::string s) {
  for (char &c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      c = ' ';
  while (!s.empty() && s.back() == ' ')
    s.pop_back();
  return s;
}

} // namespace qforge

#endif // QFORGE_SUPPORT_ONELINE_H
