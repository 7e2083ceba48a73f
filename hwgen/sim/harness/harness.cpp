// Verilator test bench for any hwgen top module (see hwgen/rtl/axis.py for the port contract).
//
// The same source serves every design: the model is always verilated with `--prefix Vtop`, and the
// tdata ports are read and written through overloads for each Verilator port type (CData, SData,
// IData, QData and VlWide<N>), so no per-design code is generated.
//
// Usage:
//   harness IN_FILE OUT_FILE STATS_FILE IN_BYTES OUT_BYTES IN_BEATS_PER_FRAME OUT_BEATS_PER_FRAME
//           FRAMES STALL_PROB SEED MAX_IDLE
//
// IN_FILE holds FRAMES * IN_BEATS_PER_FRAME beats of IN_BYTES little-endian bytes each; OUT_FILE
// receives the output beats the same way. STATS_FILE receives JSON with the cycle of the first input
// handshake and of the last output handshake of every frame, and the total cycle count. Cycle 0 is
// the first clock edge after reset. With STALL_PROB > 0 the bench idles tvalid before a beat and
// drops tready, each with that probability per cycle (AXI-Stream rules: tvalid, once high, stays
// high until the handshake). If no handshake happens for MAX_IDLE cycles the bench reports a
// deadlock and exits with status 3.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "Vtop.h"
#include "verilated.h"

namespace {

// ---- tdata access, one overload per Verilator port representation ---------------------------

template <typename T>
constexpr std::size_t port_bytes(const T&) {
    return sizeof(T);
}
template <std::size_t N>
constexpr std::size_t port_bytes(const VlWide<N>&) {
    return N * sizeof(EData);
}

template <typename T>
void put_beat(T& port, const uint8_t* bytes, std::size_t n) {
    uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(bytes[i]) << (8 * i);
    port = static_cast<T>(v);
}
template <std::size_t N>
void put_beat(VlWide<N>& port, const uint8_t* bytes, std::size_t n) {
    for (std::size_t w = 0; w < N; ++w) {
        EData word = 0;
        for (std::size_t b = 0; b < sizeof(EData); ++b) {
            const std::size_t i = w * sizeof(EData) + b;
            if (i < n) word |= static_cast<EData>(bytes[i]) << (8 * b);
        }
        port[w] = word;
    }
}

template <typename T>
void get_beat(const T& port, uint8_t* bytes, std::size_t n) {
    const uint64_t v = port;
    for (std::size_t i = 0; i < n; ++i) bytes[i] = static_cast<uint8_t>(v >> (8 * i));
}
template <std::size_t N>
void get_beat(const VlWide<N>& port, uint8_t* bytes, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
        bytes[i] = static_cast<uint8_t>(port[i / sizeof(EData)] >> (8 * (i % sizeof(EData))));
    }
}

// ---- deterministic stalls ----------------------------------------------------------------

// xorshift64*: tiny, fast and identical on every platform, so a seed reproduces a stall pattern.
class Rng {
  public:
    explicit Rng(uint64_t seed) : s_(seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull) {
        if (s_ == 0) s_ = 1;
    }
    bool chance(double p) {
        if (p <= 0.0) return false;
        s_ ^= s_ >> 12;
        s_ ^= s_ << 25;
        s_ ^= s_ >> 27;
        const uint64_t r = s_ * 0x2545F4914F6CDD1Dull;
        return static_cast<double>(r >> 11) * 0x1.0p-53 < p;
    }

  private:
    uint64_t s_;
};

[[noreturn]] void fail(int code, const std::string& msg) {
    std::fprintf(stderr, "harness: %s\n", msg.c_str());
    std::exit(code);
}

uint64_t parse_u64(const char* s, const char* what) {
    char* end = nullptr;
    const unsigned long long v = std::strtoull(s, &end, 10);
    if (end == s || *end != '\0') fail(2, std::string("bad ") + what + ": " + s);
    return v;
}

double parse_prob(const char* s) {
    char* end = nullptr;
    const double v = std::strtod(s, &end);
    if (end == s || *end != '\0' || v < 0.0 || v >= 1.0) fail(2, std::string("bad stall prob: ") + s);
    return v;
}

std::vector<uint8_t> read_file(const char* path) {
    FILE* f = std::fopen(path, "rb");
    if (!f) fail(2, std::string("cannot open ") + path);
    std::vector<uint8_t> data;
    uint8_t buf[1 << 16];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) data.insert(data.end(), buf, buf + n);
    std::fclose(f);
    return data;
}

void write_file(const char* path, const std::vector<uint8_t>& data) {
    FILE* f = std::fopen(path, "wb");
    if (!f || std::fwrite(data.data(), 1, data.size(), f) != data.size()) {
        fail(2, std::string("cannot write ") + path);
    }
    std::fclose(f);
}

void write_stats(const char* path, uint64_t total, const std::vector<uint64_t>& in_first,
                 const std::vector<uint64_t>& out_last) {
    FILE* f = std::fopen(path, "w");
    if (!f) fail(2, std::string("cannot write ") + path);
    auto list = [f](const char* key, const std::vector<uint64_t>& v) {
        std::fprintf(f, "\"%s\": [", key);
        for (std::size_t i = 0; i < v.size(); ++i) {
            std::fprintf(f, i ? ", %llu" : "%llu", static_cast<unsigned long long>(v[i]));
        }
        std::fprintf(f, "]");
    };
    std::fprintf(f, "{\"total_cycles\": %llu, ", static_cast<unsigned long long>(total));
    list("in_first", in_first);
    std::fprintf(f, ", ");
    list("out_last", out_last);
    std::fprintf(f, "}\n");
    std::fclose(f);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 12) {
        fail(2,
             "usage: harness IN_FILE OUT_FILE STATS_FILE IN_BYTES OUT_BYTES IN_BEATS_PER_FRAME "
             "OUT_BEATS_PER_FRAME FRAMES STALL_PROB SEED MAX_IDLE");
    }
    const char* in_path = argv[1];
    const char* out_path = argv[2];
    const char* stats_path = argv[3];
    const uint64_t in_bytes = parse_u64(argv[4], "in bytes");
    const uint64_t out_bytes = parse_u64(argv[5], "out bytes");
    const uint64_t in_bpf = parse_u64(argv[6], "in beats per frame");
    const uint64_t out_bpf = parse_u64(argv[7], "out beats per frame");
    const uint64_t frames = parse_u64(argv[8], "frames");
    const double stall = parse_prob(argv[9]);
    const uint64_t seed = parse_u64(argv[10], "seed");
    const uint64_t max_idle = parse_u64(argv[11], "max idle");

    auto ctx = std::make_unique<VerilatedContext>();
    auto top = std::make_unique<Vtop>(ctx.get());

    if (in_bytes > port_bytes(top->s_axis_tdata)) fail(2, "IN_BYTES exceeds s_axis_tdata width");
    if (out_bytes > port_bytes(top->m_axis_tdata)) fail(2, "OUT_BYTES exceeds m_axis_tdata width");
    if (in_bpf == 0 || out_bpf == 0 || frames == 0) fail(2, "beats per frame and frames must be > 0");

    const std::vector<uint8_t> input = read_file(in_path);
    const uint64_t in_total = in_bpf * frames;
    const uint64_t out_total = out_bpf * frames;
    if (input.size() != in_total * in_bytes) {
        fail(2, "input file holds " + std::to_string(input.size()) + " bytes, expected " +
                    std::to_string(in_total * in_bytes));
    }
    std::vector<uint8_t> output(out_total * out_bytes);
    std::vector<uint64_t> in_first(frames), out_last(frames);
    Rng in_rng(seed), out_rng(seed ^ 0x5555555555555555ull);

    // Synchronous active-low reset, long enough for any registered reset logic.
    top->ap_rst_n = 0;
    top->s_axis_tvalid = 0;
    top->m_axis_tready = 0;
    for (int i = 0; i < 4; ++i) {
        top->ap_clk = 0;
        top->eval();
        top->ap_clk = 1;
        top->eval();
    }
    top->ap_rst_n = 1;

    uint64_t in_idx = 0, out_idx = 0, cycle = 0, idle = 0;
    bool presenting = false;
    while (in_idx < in_total || out_idx < out_total) {
        // Drive inputs while the clock is low, then sample the handshakes the rising edge takes.
        top->ap_clk = 0;
        if (!presenting && in_idx < in_total && !in_rng.chance(stall)) {
            put_beat(top->s_axis_tdata, &input[in_idx * in_bytes], in_bytes);
            presenting = true;
        }
        top->s_axis_tvalid = presenting;
        top->m_axis_tready = !out_rng.chance(stall);
        top->eval();

        const bool in_fire = presenting && top->s_axis_tready;
        const bool out_fire = top->m_axis_tvalid && top->m_axis_tready;
        if (out_fire) {
            if (out_idx >= out_total) fail(4, "output beat beyond the expected count");
            get_beat(top->m_axis_tdata, &output[out_idx * out_bytes], out_bytes);
            if ((out_idx + 1) % out_bpf == 0) out_last[out_idx / out_bpf] = cycle;
            ++out_idx;
        }
        if (in_fire) {
            if (in_idx % in_bpf == 0) in_first[in_idx / in_bpf] = cycle;
            ++in_idx;
            presenting = false;
        }

        top->ap_clk = 1;
        top->eval();

        idle = (in_fire || out_fire) ? 0 : idle + 1;
        if (idle >= max_idle) {
            fail(3, "deadlock: no handshake for " + std::to_string(max_idle) + " cycles at cycle " +
                        std::to_string(cycle) + "; accepted " + std::to_string(in_idx) + "/" +
                        std::to_string(in_total) + " input beats, produced " +
                        std::to_string(out_idx) + "/" + std::to_string(out_total) +
                        " output beats");
        }
        ++cycle;
    }
    const uint64_t total = cycle;

    // A design that emits more beats than a frame holds is wrong even if the counted ones match.
    top->s_axis_tvalid = 0;
    for (int i = 0; i < 64; ++i) {
        top->ap_clk = 0;
        top->m_axis_tready = 1;
        top->eval();
        if (top->m_axis_tvalid) fail(4, "output beat beyond the expected count");
        top->ap_clk = 1;
        top->eval();
    }

    top->final();
    write_file(out_path, output);
    write_stats(stats_path, total, in_first, out_last);
    return 0;
}
