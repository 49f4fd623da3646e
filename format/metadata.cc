#include "format/metadata.h"

#include <unistd.h>

#include <chrono>

#include "format/program.h"
#include "format/tap_generated.h"

namespace tapkit {
namespace {

using flatbuffers::FlatBufferBuilder;
using flatbuffers::Offset;
using flatbuffers::Vector;

std::string Str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }

Offset<flatbuffers::String> OptStr(FlatBufferBuilder& b, const std::string& s) {
  return s.empty() ? 0 : b.CreateString(s);
}

Offset<fb::Labels> MakeLabels(FlatBufferBuilder& b, const Labels& l) {
  if (l.empty()) return 0;
  return fb::CreateLabels(b, OptStr(b, l.ns), OptStr(b, l.pod), OptStr(b, l.workload_kind),
                          OptStr(b, l.workload_name), OptStr(b, l.service));
}

Labels ReadLabels(const fb::Labels* l) {
  Labels out;
  if (!l) return out;
  out.ns = Str(l->namespace_());
  out.pod = Str(l->pod());
  out.workload_kind = Str(l->workload_kind());
  out.workload_name = Str(l->workload_name());
  out.service = Str(l->service());
  return out;
}

Offset<Vector<Offset<fb::CapturePoint>>> MakePoints(FlatBufferBuilder& b,
                                                    const std::vector<CapturePointInfo>& ps) {
  std::vector<Offset<fb::CapturePoint>> offs;
  for (const CapturePointInfo& p : ps) {
    auto kind = OptStr(b, p.kind);
    auto name = OptStr(b, p.name);
    auto labels = MakeLabels(b, p.labels);
    auto links = b.CreateVector(p.link_types);
    offs.push_back(fb::CreateCapturePoint(b, p.id, kind, name, labels, links));
  }
  return b.CreateVector(offs);
}

std::vector<CapturePointInfo> ReadPoints(const Vector<Offset<fb::CapturePoint>>* v) {
  std::vector<CapturePointInfo> out;
  if (!v) return out;
  for (const fb::CapturePoint* p : *v) {
    CapturePointInfo info;
    info.id = p->id();
    info.kind = Str(p->kind());
    info.name = Str(p->name());
    info.labels = ReadLabels(p->labels());
    if (p->link_types()) info.link_types.assign(p->link_types()->begin(), p->link_types()->end());
    out.push_back(std::move(info));
  }
  return out;
}

Offset<Vector<Offset<fb::KeyValue>>> MakePairs(
    FlatBufferBuilder& b, const std::vector<std::pair<std::string, std::string>>& kv) {
  std::vector<Offset<fb::KeyValue>> offs;
  for (const auto& [k, v] : kv) {
    auto key = b.CreateString(k);
    auto value = b.CreateString(v);
    offs.push_back(fb::CreateKeyValue(b, key, value));
  }
  return b.CreateVector(offs);
}

std::vector<std::pair<std::string, std::string>> ReadPairs(const Vector<Offset<fb::KeyValue>>* v) {
  std::vector<std::pair<std::string, std::string>> out;
  if (!v) return out;
  for (const fb::KeyValue* kv : *v) out.emplace_back(Str(kv->key()), Str(kv->value()));
  return out;
}

Offset<Vector<Offset<fb::Counter>>> MakeCounters(FlatBufferBuilder& b,
                                                 const std::map<std::string, uint64_t>& m) {
  std::vector<Offset<fb::Counter>> offs;
  for (const auto& [name, value] : m) {
    auto n = b.CreateString(name);
    offs.push_back(fb::CreateCounter(b, n, value));
  }
  return b.CreateVector(offs);
}

std::map<std::string, uint64_t> ReadCounters(const Vector<Offset<fb::Counter>>* v) {
  std::map<std::string, uint64_t> out;
  if (!v) return out;
  for (const fb::Counter* c : *v) out[Str(c->name())] += c->value();
  return out;
}

template <typename T>
const T* VerifiedRoot(std::string_view bytes) {
  flatbuffers::Verifier v(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                          format::kMaxFlatBufferDepth, format::kMaxFlatBufferTables);
  if (!v.VerifyBuffer<T>(nullptr)) return nullptr;
  return flatbuffers::GetRoot<T>(bytes.data());
}

}  // namespace

std::string EncodeCaptureMetadata(const CaptureMetadata& m) {
  FlatBufferBuilder b(1024);
  auto writer_name = OptStr(b, m.writer_name);
  auto writer_version = OptStr(b, m.writer_version);
  auto host = OptStr(b, m.host);
  auto cmd = b.CreateVectorOfStrings(m.command_line);
  auto target = OptStr(b, m.target);
  auto ns = OptStr(b, m.ns);
  auto filters = MakePairs(b, m.filters);
  auto red_headers = b.CreateVectorOfStrings(m.redaction.headers);
  // Written only when there are some, so that a header-only policy encodes as in 1.1.
  using Strings = Offset<Vector<Offset<flatbuffers::String>>>;
  Strings red_params, red_fields;
  if (!m.redaction.query_params.empty()) {
    red_params = b.CreateVectorOfStrings(m.redaction.query_params);
  }
  if (!m.redaction.json_fields.empty()) {
    red_fields = b.CreateVectorOfStrings(m.redaction.json_fields);
  }
  auto redaction = fb::CreateRedaction(b, m.redaction.enabled, red_headers, m.redaction.keyed,
                                       red_params, red_fields);
  auto points = MakePoints(b, m.capture_points);
  auto extra = MakePairs(b, m.extra);
  b.Finish(fb::CreateCaptureHeader(b, m.start_time_ns, writer_name, writer_version, host, cmd,
                                   target, ns, filters, m.body_limit, redaction, points, extra));
  return std::string(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
}

bool DecodeCaptureMetadata(std::string_view bytes, CaptureMetadata* out) {
  const fb::CaptureHeader* h = VerifiedRoot<fb::CaptureHeader>(bytes);
  if (!h) return false;
  CaptureMetadata m;
  m.start_time_ns = h->start_time();
  m.writer_name = Str(h->writer_name());
  m.writer_version = Str(h->writer_version());
  m.host = Str(h->host());
  if (h->command_line()) {
    for (const flatbuffers::String* s : *h->command_line()) m.command_line.push_back(Str(s));
  }
  m.target = Str(h->target());
  m.ns = Str(h->namespace_());
  m.filters = ReadPairs(h->filters());
  m.body_limit = h->body_limit();
  if (const fb::Redaction* r = h->redaction()) {
    m.redaction.enabled = r->enabled();
    m.redaction.keyed = r->keyed();
    if (r->headers()) {
      for (const flatbuffers::String* s : *r->headers()) m.redaction.headers.push_back(Str(s));
    }
    if (r->query_params()) {
      for (const flatbuffers::String* s : *r->query_params()) {
        m.redaction.query_params.push_back(Str(s));
      }
    }
    if (r->json_fields()) {
      for (const flatbuffers::String* s : *r->json_fields()) {
        m.redaction.json_fields.push_back(Str(s));
      }
    }
  }
  m.capture_points = ReadPoints(h->capture_points());
  m.extra = ReadPairs(h->extra());
  *out = std::move(m);
  return true;
}

std::string EncodeFileSummary(const FileSummary& s) {
  FlatBufferBuilder b(1024 + s.index.size() * sizeof(fb::SegmentEntry));
  std::vector<fb::SegmentEntry> entries;
  entries.reserve(s.index.size());
  for (const SegmentInfo& i : s.index) {
    entries.emplace_back(i.offset, i.min_sort_key, i.max_sort_key, i.exchanges, i.length);
  }
  auto index = b.CreateVectorOfStructs(entries);
  auto drops = MakeCounters(b, s.drops);
  auto counters = MakeCounters(b, s.counters);
  auto points = MakePoints(b, s.capture_points);
  b.Finish(fb::CreateTrailer(b, s.exchanges, s.segments, s.raw_bytes, s.stored_bytes,
                             s.min_sort_key, s.max_sort_key, s.end_time_ns, index, drops, counters,
                             points, s.rebuilt));
  return std::string(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
}

bool DecodeFileSummary(std::string_view bytes, FileSummary* out) {
  const fb::Trailer* t = VerifiedRoot<fb::Trailer>(bytes);
  if (!t) return false;
  FileSummary s;
  s.exchanges = t->exchanges();
  s.segments = t->segments();
  s.raw_bytes = t->raw_bytes();
  s.stored_bytes = t->stored_bytes();
  s.min_sort_key = t->min_sort_key();
  s.max_sort_key = t->max_sort_key();
  s.end_time_ns = t->end_time();
  if (t->index()) {
    for (const fb::SegmentEntry* e : *t->index()) {
      s.index.push_back(SegmentInfo{e->offset(), e->min_sort_key(), e->max_sort_key(),
                                    e->exchanges(), e->length()});
    }
  }
  s.drops = ReadCounters(t->drops());
  s.counters = ReadCounters(t->counters());
  s.capture_points = ReadPoints(t->capture_points());
  s.rebuilt = t->rebuilt();
  *out = std::move(s);
  return true;
}

CaptureMetadata NewCaptureMetadata(std::string_view writer_name) {
  CaptureMetadata m;
  m.start_time_ns = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                              std::chrono::system_clock::now().time_since_epoch())
                                              .count());
  m.writer_name = std::string(writer_name);
  m.writer_version = std::string(kVersion);
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) == 0) m.host = host;
  return m;
}

}  // namespace tapkit
