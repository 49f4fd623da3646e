// format_bench: the .tap writer and reader against zstd alone on the same bytes (bench/README.md).
//
// Each writer/reader benchmark has a zstd-only twin over exactly the frames the writer produces,
// at the same level, so bench/format_ratios.py can report ratios measured in one run.
#include <benchmark/benchmark.h>
#include <zstd.h>

#include <algorithm>
#include <random>

#include "bench/synth.h"
#include "format/codec.h"
#include "format/reader.h"
#include "format/writer.h"

namespace tapkit {
namespace {

constexpr int kExchanges = 20000;

const std::vector<Exchange>& Mix() {
  static const std::vector<Exchange>* xs = [] {
    auto* v = new std::vector<Exchange>;
    SyntheticTraffic t(1);
    for (int i = 0; i < kExchanges; ++i) v->push_back(t.Next());
    return v;
  }();
  return *xs;
}

std::string WriteFile(const std::vector<Exchange>& xs, int level) {
  std::string out;
  out.reserve(16 << 20);  // like a file: no reallocation inside the measured loop
  WriterOptions o;
  o.zstd_level = level;
  o.flush_interval_ns = 0;
  auto w = Writer::Open(NewStringWritableFile(&out), CaptureMetadata{}, o);
  for (const Exchange& x : xs) (void)(*w)->Append(x);
  (void)(*w)->Close();
  return out;
}

// The raw (meta, body) frames of each segment, cut as the Writer cuts them.
const std::vector<std::pair<std::string, std::string>>& RawFrames() {
  static const auto* frames = [] {
    auto* f = new std::vector<std::pair<std::string, std::string>>;
    flatbuffers::FlatBufferBuilder b;
    std::string meta, body;
    for (const Exchange& x : Mix()) {
      (void)EncodeExchange(x, &b, &body);
      meta.append(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
      if (meta.size() + body.size() >= format::kDefaultSegmentBytes) {
        f->emplace_back(std::move(meta), std::move(body));
        meta.clear();
        body.clear();
      }
    }
    if (!meta.empty()) f->emplace_back(meta, body);
    return f;
  }();
  return *frames;
}

void BM_Write(benchmark::State& state) {
  int level = static_cast<int>(state.range(0));
  const auto& xs = Mix();
  size_t bytes = 0;
  for (auto _ : state) {
    std::string f = WriteFile(xs, level);
    bytes = f.size();
    benchmark::DoNotOptimize(f.data());
  }
  state.SetItemsProcessed(state.iterations() * xs.size());
  state.counters["bytes_per_exchange"] = double(bytes) / xs.size();
  std::vector<uint64_t> wire;
  for (const Exchange& x : xs) wire.push_back(WireSize(x));
  std::sort(wire.begin(), wire.end());
  state.counters["median_wire_bytes"] = double(wire[wire.size() / 2]);
  uint64_t total = 0;
  for (uint64_t w : wire) total += w;
  state.counters["mean_wire_bytes"] = double(total) / wire.size();
}
BENCHMARK(BM_Write)->Arg(1)->Arg(3)->Arg(9)->Unit(benchmark::kMillisecond);

void BM_CompressOnly(benchmark::State& state) {
  int level = static_cast<int>(state.range(0));
  const auto& frames = RawFrames();
  ZSTD_CCtx* c = ZSTD_createCCtx();
  std::string out(ZSTD_compressBound(format::kMaxFrameSize / 16), '\0');
  for (auto _ : state) {
    for (const auto& [meta, body] : frames) {
      benchmark::DoNotOptimize(
          ZSTD_compressCCtx(c, out.data(), out.size(), meta.data(), meta.size(), level));
      benchmark::DoNotOptimize(
          ZSTD_compressCCtx(c, out.data(), out.size(), body.data(), body.size(), level));
    }
  }
  ZSTD_freeCCtx(c);
  state.SetItemsProcessed(state.iterations() * kExchanges);
}
BENCHMARK(BM_CompressOnly)->Arg(1)->Arg(3)->Arg(9)->Unit(benchmark::kMillisecond);

const std::string& File3() {
  static const std::string* f = new std::string(WriteFile(Mix(), 3));
  return *f;
}

void ReadBench(benchmark::State& state, bool headers_only) {
  const std::string& file = File3();
  uint64_t sum = 0;
  for (auto _ : state) {
    ReaderOptions o;
    o.headers_only = headers_only;
    auto r = Reader::Open(NewStringReadableFile(file), o);
    ExchangeView v;
    while ((*r)->Next(&v)) {
      sum += v.sort_key_ns() + v.response().status() + v.response().body().data().size() +
             v.request().path().size();
    }
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations() * kExchanges);
}

void BM_ReadWhole(benchmark::State& state) { ReadBench(state, false); }
void BM_ReadHeadersOnly(benchmark::State& state) { ReadBench(state, true); }
BENCHMARK(BM_ReadWhole)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ReadHeadersOnly)->Unit(benchmark::kMillisecond);

void BM_DecompressOnly(benchmark::State& state) {
  std::vector<std::pair<std::string, std::string>> compressed;
  for (const auto& [meta, body] : RawFrames()) {
    std::string m(ZSTD_compressBound(meta.size()), '\0'), b(ZSTD_compressBound(body.size()), '\0');
    m.resize(ZSTD_compress(m.data(), m.size(), meta.data(), meta.size(), 3));
    b.resize(ZSTD_compress(b.data(), b.size(), body.data(), body.size(), 3));
    compressed.emplace_back(std::move(m), std::move(b));
  }
  ZSTD_DCtx* d = ZSTD_createDCtx();
  std::string out(format::kDefaultSegmentBytes * 2, '\0');
  for (auto _ : state) {
    for (const auto& [m, b] : compressed) {
      benchmark::DoNotOptimize(ZSTD_decompressDCtx(d, out.data(), out.size(), m.data(), m.size()));
      benchmark::DoNotOptimize(ZSTD_decompressDCtx(d, out.data(), out.size(), b.data(), b.size()));
    }
  }
  ZSTD_freeDCtx(d);
  state.SetItemsProcessed(state.iterations() * kExchanges);
}
BENCHMARK(BM_DecompressOnly)->Unit(benchmark::kMillisecond);

// Seek to a random time in a file of one million exchanges and read the first exchange there.
void BM_SeekMillion(benchmark::State& state) {
  static const std::string* file = [] {
    auto* out = new std::string;
    WriterOptions o;
    o.flush_interval_ns = 0;
    auto w = Writer::Open(NewStringWritableFile(out), CaptureMetadata{}, o);
    SyntheticTraffic t(2);
    for (int i = 0; i < 1'000'000; ++i) (void)(*w)->Append(t.Next());
    (void)(*w)->Close();
    return out;
  }();
  auto probe = Reader::Open(NewStringReadableFile(*file));
  uint64_t lo = (*probe)->summary()->min_sort_key, hi = (*probe)->summary()->max_sort_key;
  std::mt19937_64 rng(3);
  uint64_t decompressed = 0, seeks = 0;
  for (auto _ : state) {
    uint64_t t = lo + rng() % (hi - lo);
    auto r = Reader::Open(NewStringReadableFile(*file));
    (void)(*r)->Seek(t);
    ExchangeView v;
    bool got = (*r)->Next(&v);
    benchmark::DoNotOptimize(got);
    decompressed += (*r)->stats().segments_decompressed;
    ++seeks;
  }
  state.counters["segments_decompressed_per_seek"] = double(decompressed) / seeks;
  state.counters["segments_in_file"] = double((*probe)->summary()->segments);
  state.counters["file_mib"] = double(file->size()) / (1 << 20);
}
BENCHMARK(BM_SeekMillion)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace tapkit

BENCHMARK_MAIN();
