// print.h's LineReporter, apart from PrintCaptures so that tapfilter (recorder/filter.h) reports
// damage the same way without linking tapcat's outputs (tapkit_print, libpcap among them).
#include <cstdio>

#include "format/print.h"

namespace tapkit {

LineReporter::LineReporter(const std::string& program, std::string file, std::string* pending,
                           std::FILE* out, std::FILE* err)
    : program_(program), file_(std::move(file)), pending_(pending), out_(out), err_(err) {}

void LineReporter::Corruption(uint64_t offset, uint64_t length, std::string_view reason) {
  ++damage_;
  if (pending_) FlushPending();
  std::fprintf(err_, "%s: %s: offset %llu: %.*s (%llu bytes skipped)\n", program_.c_str(),
               file_.c_str(), static_cast<unsigned long long>(offset),
               static_cast<int>(reason.size()), reason.data(),
               static_cast<unsigned long long>(length));
}

void LineReporter::Notice(uint64_t offset, std::string_view message) {
  if (pending_) FlushPending();
  std::fprintf(err_, "%s: %s: offset %llu: notice: %.*s\n", program_.c_str(), file_.c_str(),
               static_cast<unsigned long long>(offset), static_cast<int>(message.size()),
               message.data());
}

void LineReporter::FlushPending() {
  if (!pending_->empty()) std::fwrite(pending_->data(), 1, pending_->size(), out_);
  pending_->clear();
  std::fflush(out_);
}

}  // namespace tapkit
