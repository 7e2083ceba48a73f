// Verilator test bench for any hwgen top module (see hwgen/rtl/axis.py for the port contract).
//
// The same source serves every design: the model is always verilated with `--prefix Vtop`, and the
// tdata ports are read and written through overloads for each Verilator port type (CData, SData,
// IData, QData and VlWide<N>), so no per-design code is generated. A design has one input and one
// output stream (`s_axis_*`, `m_axis_*`), or, compiled with -DHWGEN_IN=K / -DHWGEN_OUT=M (up to 4),
// K inputs `s_axis0_*`.. and M outputs `m_axis0_*`.. (a multi-stream unit tested alone). Compiled
// with -DHWGEN_WEIGHTS, the design also has a weight stream `s_axis_weights_*` (weights loaded at
// start-up), the last input port: its `in` line ends with `once`, since it is sent one time only;
// the other inputs offer nothing until every `once` stream is in (weights first, as a driver does).
//
// Compiled with -DHWGEN_DRAM=K (up to 4), the design also has K AXI4 read masters `m_axi0_*`..
// (araddr, arlen, arvalid/arready; rdata, rlast, rvalid/rready) and the input `dram_base`: the
// bench holds a DRAM image at that base and answers every read burst after a latency, one beat
// per cycle, with random back-pressure on arready and gaps in rvalid at the stall probability. A
// read outside the image is an error (exit 5) naming the master; a DRAM told to stay silent never
// answers, and the deadlock report names the masters whose reads wait. Master K also writes where
// bit K of -DHWGEN_DRAM_WRITES is set (a FIFO spilled to DRAM): awaddr, awlen, awvalid/awready;
// wdata, wlast, wvalid/wready; bvalid/bready. The bench takes each burst's address, then its data
// (into the image, which reads then see), and answers it after the latency, with the same random
// back-pressure; a write outside the image or a wlast out of place is an error (exit 5).
//
// Usage: harness CONFIG_FILE, a text file of lines
//   in PATH BYTES BEATS_PER_FRAME [once]  one per input stream, in port order; `once`: the file
//                                      holds BEATS_PER_FRAME beats, sent one time, not per frame
//   out PATH BYTES BEATS_PER_FRAME     one per output stream, in port order
//   frames N | stall P | seed S | max_idle M | stats PATH
//   dram PATH BASE                     the DRAM image (bytes) and its base address (decimal)
//   dram_latency CYCLES | dram_silent  cycles from a read request to its first beat; never answer
//   pace CYCLES                        spread each input frame evenly over CYCLES cycles: beat i
//                                      of a port is offered no earlier than cycle i*CYCLES/BEATS
//   watch NAME                         a stream inside the design: NAME_tvalid and NAME_tready,
//                                      public signals read through VPI when the design deadlocks
//   level NAME IN OUT                  a buffer between streams IN and OUT (watched names, as
//                                      above): the most beats it held, (handshakes on IN) minus
//                                      (handshakes on OUT) at any cycle, goes to the stats file
//
// An input file holds FRAMES * BEATS_PER_FRAME beats of BYTES little-endian bytes each; an output
// file receives its beats the same way. The stats file receives JSON with, per input, the cycle of
// the first handshake of every frame, per output the cycle of the last handshake of every frame,
// and the total cycle count. Cycle 0 is the first clock edge after reset. With stall P > 0 the
// bench idles each tvalid before a beat and drops each tready, each with that probability per
// cycle and port (AXI-Stream rules: tvalid, once high, stays high until the handshake). If no
// handshake happens on any port for MAX_IDLE cycles the bench reports a deadlock, naming the
// ports and watched streams that hold data nobody takes (valid, not ready) and those waiting for
// data (ready, not valid), and exits with status 3.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "Vtop.h"
#include "verilated.h"
#include "verilated_vpi.h"

#ifndef HWGEN_IN
#define HWGEN_IN 1
#endif
#ifndef HWGEN_OUT
#define HWGEN_OUT 1
#endif

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

uint64_t parse_u64(const std::string& s, const char* what) {
    char* end = nullptr;
    const unsigned long long v = std::strtoull(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0') fail(2, std::string("bad ") + what + ": " + s);
    return v;
}

double parse_prob(const std::string& s) {
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (s.empty() || *end != '\0' || v < 0.0 || v >= 1.0) fail(2, "bad stall prob: " + s);
    return v;
}

std::vector<uint8_t> read_file(const std::string& path) {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) fail(2, "cannot open " + path);
    std::vector<uint8_t> data;
    uint8_t buf[1 << 16];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) data.insert(data.end(), buf, buf + n);
    std::fclose(f);
    return data;
}

void write_file(const std::string& path, const std::vector<uint8_t>& data) {
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f || std::fwrite(data.data(), 1, data.size(), f) != data.size()) fail(2, "cannot write " + path);
    std::fclose(f);
}

// ---- ports -----------------------------------------------------------------------------------

// One stream port of the top module, its tdata reached through the overloads above.
struct Port {
    std::string name;
    std::function<void(const uint8_t*, std::size_t)> put;  // inputs
    std::function<void(uint8_t*, std::size_t)> get;        // outputs
    CData* valid;
    CData* ready;
    std::size_t width_bytes;
    // from the config
    std::string path;
    uint64_t bytes = 0, bpf = 0, frames = 0;  // frames: of this port (1 for a `once` stream)
    bool once = false;
    // run state
    std::vector<uint8_t> data;
    uint64_t idx = 0;
    bool presenting = false;
    std::vector<uint64_t> marks;  // first (inputs) or last (outputs) handshake of each frame
};

#define HWGEN_IN_PORT(P) \
    Port{#P, [top](const uint8_t* b, std::size_t n) { put_beat(top->P##_tdata, b, n); }, nullptr, \
         &top->P##_tvalid, &top->P##_tready, port_bytes(top->P##_tdata)}
#define HWGEN_OUT_PORT(P) \
    Port{#P, nullptr, [top](uint8_t* b, std::size_t n) { get_beat(top->P##_tdata, b, n); }, \
         &top->P##_tvalid, &top->P##_tready, port_bytes(top->P##_tdata)}

std::vector<Port> input_ports(Vtop* top) {
#if HWGEN_IN == 1
    std::vector<Port> p{HWGEN_IN_PORT(s_axis)};
#else
    std::vector<Port> p{HWGEN_IN_PORT(s_axis0), HWGEN_IN_PORT(s_axis1)};
#if HWGEN_IN > 2
    p.push_back(HWGEN_IN_PORT(s_axis2));
#endif
#if HWGEN_IN > 3
    p.push_back(HWGEN_IN_PORT(s_axis3));
#endif
#endif
#ifdef HWGEN_WEIGHTS
    p.push_back(HWGEN_IN_PORT(s_axis_weights));
#endif
    return p;
}

std::vector<Port> output_ports(Vtop* top) {
#if HWGEN_OUT == 1
    return {HWGEN_OUT_PORT(m_axis)};
#else
    std::vector<Port> p{HWGEN_OUT_PORT(m_axis0), HWGEN_OUT_PORT(m_axis1)};
#if HWGEN_OUT > 2
    p.push_back(HWGEN_OUT_PORT(m_axis2));
#endif
#if HWGEN_OUT > 3
    p.push_back(HWGEN_OUT_PORT(m_axis3));
#endif
    return p;
#endif
}

// A stream inside the design, read through VPI only when the design deadlocks.
struct Watch {
    std::string name;
    vpiHandle valid, ready;
};

// A buffer whose fill level is tracked from the handshakes on the streams around it.
struct Level {
    std::string name;
    vpiHandle in_valid, in_ready, out_valid, out_ready;
    int64_t level = 0, max_level = 0;
};

vpiHandle public_signal(const std::string& name) {
    vpiHandle h = vpi_handle_by_name(const_cast<PLI_BYTE8*>(name.c_str()), nullptr);
    if (!h) fail(2, "no public signal " + name);
    return h;
}

int read_bit(vpiHandle h) {
    s_vpi_value v;
    v.format = vpiIntVal;
    vpi_get_value(h, &v);
    return v.value.integer & 1;
}

std::string list_stuck(const std::vector<Port>& ins, const std::vector<Port>& outs,
                       const std::vector<Watch>& watches) {
    std::string full, waiting;
    auto add = [](std::string& s, const std::string& name) { s += (s.empty() ? "" : " ") + name; };
    for (const Port& p : ins) {
        if (p.presenting && !*p.ready) add(full, p.name);
    }
    for (const Port& p : outs) {
        if (p.idx < p.marks.size() * p.bpf && !*p.valid) add(waiting, p.name);
    }
    for (const Watch& w : watches) {
        const int valid = read_bit(w.valid), ready = read_bit(w.ready);
        if (valid && !ready) add(full, w.name);
        if (!valid && ready) add(waiting, w.name);
    }
    return "; valid without ready: [" + full + "]; ready without valid: [" + waiting + "]";
}

void write_stats(const std::string& path, uint64_t total, const std::vector<Port>& ins,
                 const std::vector<Port>& outs, const std::vector<Level>& levels) {
    FILE* f = std::fopen(path.c_str(), "w");
    if (!f) fail(2, "cannot write " + path);
    auto lists = [f](const char* key, const std::vector<Port>& ports) {
        std::fprintf(f, "\"%s\": [", key);
        for (std::size_t p = 0; p < ports.size(); ++p) {
            std::fprintf(f, p ? ", [" : "[");
            const auto& v = ports[p].marks;
            for (std::size_t i = 0; i < v.size(); ++i) {
                std::fprintf(f, i ? ", %llu" : "%llu", static_cast<unsigned long long>(v[i]));
            }
            std::fprintf(f, "]");
        }
        std::fprintf(f, "]");
    };
    std::fprintf(f, "{\"total_cycles\": %llu, ", static_cast<unsigned long long>(total));
    lists("in_first", ins);
    std::fprintf(f, ", ");
    lists("out_last", outs);
    std::fprintf(f, ", \"max_levels\": {");
    for (std::size_t i = 0; i < levels.size(); ++i) {
        std::fprintf(f, i ? ", \"%s\": %lld" : "\"%s\": %lld", levels[i].name.c_str(),
                     static_cast<long long>(levels[i].max_level));
    }
    std::fprintf(f, "}}\n");
    std::fclose(f);
}

void tick(Vtop* top) {
    top->ap_clk = 0;
    top->eval();
    top->ap_clk = 1;
    top->eval();
}


// ---- DRAM: AXI4 read slaves ------------------------------------------------------------------

#ifndef HWGEN_DRAM
#define HWGEN_DRAM 0
#endif

#ifndef HWGEN_DRAM_WRITES
#define HWGEN_DRAM_WRITES 0
#endif

// The write channels of a master that writes, and the bursts the bench holds for it.
struct Writer {
    std::function<void(uint8_t*, std::size_t)> get_wdata;
    IData* awaddr;
    CData* awlen;
    CData* awvalid;
    CData* awready;
    CData* wlast;
    CData* wvalid;
    CData* wready;
    CData* bvalid;
    CData* bready;
    struct Burst {
        uint64_t addr, beats;
    };
    std::vector<Burst> bursts;        // addresses taken, data not yet wholly taken (front first)
    uint64_t beat = 0;                // of the front burst
    std::vector<uint64_t> responses;  // due cycles of the answers not yet taken (front first)
    bool answering = false;
};

#define HWGEN_WRITER(K)                                                                                   \
    std::make_shared<Writer>(Writer{                                                                      \
        [top](uint8_t* b, std::size_t n) { get_beat(top->m_axi##K##_wdata, b, n); }, &top->m_axi##K##_awaddr, \
        &top->m_axi##K##_awlen, &top->m_axi##K##_awvalid, &top->m_axi##K##_awready, &top->m_axi##K##_wlast,  \
        &top->m_axi##K##_wvalid, &top->m_axi##K##_wready, &top->m_axi##K##_bvalid, &top->m_axi##K##_bready})

// One read master of the design and the bench's DRAM behind it.
struct Master {
    std::string name;
    std::function<void(const uint8_t*, std::size_t)> put_rdata;
    std::size_t data_bytes;
    IData* araddr;
    CData* arlen;
    CData* arvalid;
    CData* arready;
    CData* rlast;
    CData* rvalid;
    CData* rready;
    struct Burst {
        uint64_t addr, beats, due, requested;
    };
    std::vector<Burst> queue;  // accepted, not yet wholly answered (front first)
    uint64_t beat = 0;         // of the front burst
    bool presenting = false;
    std::shared_ptr<Writer> write;  // none for a master that only reads
};

#define HWGEN_MASTER(K)                                                                                  \
    Master{"m_axi" #K, [top](const uint8_t* b, std::size_t n) { put_beat(top->m_axi##K##_rdata, b, n); }, \
           port_bytes(top->m_axi##K##_rdata), &top->m_axi##K##_araddr, &top->m_axi##K##_arlen,          \
           &top->m_axi##K##_arvalid, &top->m_axi##K##_arready, &top->m_axi##K##_rlast,                   \
           &top->m_axi##K##_rvalid, &top->m_axi##K##_rready}

std::vector<Master> dram_masters(Vtop* top) {
    std::vector<Master> m;
#if HWGEN_DRAM > 0
    m.push_back(HWGEN_MASTER(0));
#if HWGEN_DRAM_WRITES & 1
    m.back().write = HWGEN_WRITER(0);
#endif
#endif
#if HWGEN_DRAM > 1
    m.push_back(HWGEN_MASTER(1));
#if HWGEN_DRAM_WRITES & 2
    m.back().write = HWGEN_WRITER(1);
#endif
#endif
#if HWGEN_DRAM > 2
    m.push_back(HWGEN_MASTER(2));
#if HWGEN_DRAM_WRITES & 4
    m.back().write = HWGEN_WRITER(2);
#endif
#endif
#if HWGEN_DRAM > 3
    m.push_back(HWGEN_MASTER(3));
#if HWGEN_DRAM_WRITES & 8
    m.back().write = HWGEN_WRITER(3);
#endif
#endif
    return m;
}

void set_dram_base(Vtop* top, uint64_t base) {
#if HWGEN_DRAM > 0
    top->dram_base = static_cast<IData>(base);
#else
    (void)top;
    (void)base;
#endif
}

std::string hex(uint64_t v) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "0x%llx", static_cast<unsigned long long>(v));
    return buf;
}

// A burst the bench takes must lie in the image, aligned to its words, within a 4 KB page.
void check_burst(const Master& m, const std::string& what, uint64_t addr, uint64_t beats, uint64_t base,
                 uint64_t size) {
    const uint64_t bytes = beats * m.data_bytes;
    if (addr < base || addr - base + bytes > size) {
        fail(5, "DRAM master " + m.name + ": a " + what + " of " + std::to_string(bytes) + " bytes at " + hex(addr) +
                    " lies outside the DRAM image [" + hex(base) + ", " + hex(base + size) + ")");
    }
    if (addr % m.data_bytes || addr / 4096 != (addr + bytes - 1) / 4096) {
        fail(5, "DRAM master " + m.name + ": the " + what + " burst at " + hex(addr) + " of " + std::to_string(beats) +
                    " beats is unaligned or crosses a 4 KB boundary");
    }
}

std::string waiting_reads(const std::vector<Master>& masters, uint64_t cycle) {
    std::string s;
    for (const Master& m : masters) {
        if (!m.queue.empty()) {
            s += "; DRAM master " + m.name + " waits for " + std::to_string(m.queue.size()) +
                 " read bursts, the first at " + hex(m.queue.front().addr) + " requested at cycle " +
                 std::to_string(m.queue.front().requested) + " (" +
                 std::to_string(cycle - m.queue.front().requested) + " cycles ago)";
        } else if (*m.arvalid && !*m.arready) {
            s += "; DRAM master " + m.name + ": its read request at " + hex(*m.araddr) + " is not taken";
        }
        if (m.write && !m.write->responses.empty()) {
            s += "; DRAM master " + m.name + " waits for " + std::to_string(m.write->responses.size()) +
                 " write answers";
        } else if (m.write && !m.write->bursts.empty()) {
            s += "; DRAM master " + m.name + " owes the data of a write burst at " + hex(m.write->bursts.front().addr);
        } else if (m.write && *m.write->awvalid && !*m.write->awready) {
            s += "; DRAM master " + m.name + ": its write request at " + hex(*m.write->awaddr) + " is not taken";
        }
    }
    return s;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) fail(2, "usage: harness CONFIG_FILE");
    auto ctx = std::make_unique<VerilatedContext>();
    auto top = std::make_unique<Vtop>(ctx.get());
    std::vector<Port> ins = input_ports(top.get()), outs = output_ports(top.get());
    std::vector<Watch> watches;
    std::vector<Level> levels;

    uint64_t frames = 0, seed = 0, max_idle = 0, pace = 0;
    std::vector<Master> masters = dram_masters(top.get());
    std::vector<uint8_t> dram;
    uint64_t dram_base = 0, dram_latency = 1;
    bool dram_silent = false, dram_given = false;
    double stall = 0.0;
    std::string stats_path;
    std::size_t n_in = 0, n_out = 0;
    std::ifstream config(argv[1]);
    if (!config) fail(2, std::string("cannot open ") + argv[1]);
    for (std::string line; std::getline(config, line);) {
        std::istringstream words(line);
        std::string key, a, b, c, d;
        words >> key >> a >> b >> c >> d;
        if (key == "in" || key == "out") {
            std::vector<Port>& ports = key == "in" ? ins : outs;
            std::size_t& n = key == "in" ? n_in : n_out;
            if (n >= ports.size()) fail(2, "more '" + key + "' lines than the design has ports");
            Port& p = ports[n++];
            p.path = a;
            p.bytes = parse_u64(b, "bytes");
            p.bpf = parse_u64(c, "beats per frame");
            if (p.bytes == 0 || p.bytes > p.width_bytes) fail(2, key + " bytes exceed " + p.name + "_tdata width");
            if (p.bpf == 0) fail(2, "beats per frame must be > 0 for port " + p.name);
            if (!d.empty() && (d != "once" || key != "in")) fail(2, "unknown config line: " + line);
            p.once = d == "once";
            p.frames = p.once ? 1 : 0;  // 0: the run's frame count, set below
        } else if (key == "frames") {
            frames = parse_u64(a, "frames");
        } else if (key == "stall") {
            stall = parse_prob(a);
        } else if (key == "pace") {
            pace = parse_u64(a, "pace");
        } else if (key == "seed") {
            seed = parse_u64(a, "seed");
        } else if (key == "max_idle") {
            max_idle = parse_u64(a, "max idle");
        } else if (key == "dram") {
            dram = read_file(a);
            dram_base = parse_u64(b, "dram base");
            dram_given = true;
        } else if (key == "dram_latency") {
            dram_latency = parse_u64(a, "dram latency");
            if (dram_latency == 0) fail(2, "dram_latency must be at least 1");
        } else if (key == "dram_silent") {
            dram_silent = true;
        } else if (key == "stats") {
            stats_path = a;
        } else if (key == "level") {
            levels.push_back({a, public_signal(b + "_tvalid"), public_signal(b + "_tready"),
                              public_signal(c + "_tvalid"), public_signal(c + "_tready")});
        } else if (key == "watch") {
            const std::string valid = a + "_tvalid", ready = a + "_tready";
            vpiHandle hv = vpi_handle_by_name(const_cast<PLI_BYTE8*>(valid.c_str()), nullptr);
            vpiHandle hr = vpi_handle_by_name(const_cast<PLI_BYTE8*>(ready.c_str()), nullptr);
            if (!hv || !hr) fail(2, "no public signals " + valid + " / " + ready);
            watches.push_back({a.substr(a.rfind('.') + 1), hv, hr});
        } else if (!key.empty()) {
            fail(2, "unknown config line: " + line);
        }
    }
    if (n_in != ins.size() || n_out != outs.size()) fail(2, "config does not name every port");
    if (frames == 0 || max_idle == 0 || stats_path.empty()) fail(2, "config needs frames, max_idle, stats");
    if (!masters.empty() && !dram_given) fail(2, "the design reads DRAM: the config needs a 'dram' line");
    std::vector<Rng> dram_rng;
    for (std::size_t k = 0; k < masters.size(); ++k) dram_rng.emplace_back((seed ^ 0x3333333333333333ull) + 15485863 * k);

    std::vector<Rng> in_rng, out_rng;
    for (std::size_t p = 0; p < ins.size(); ++p) {
        Port& port = ins[p];
        if (port.frames == 0) port.frames = frames;
        port.data = read_file(port.path);
        if (port.data.size() != port.bpf * port.frames * port.bytes) {
            fail(2, "input file " + port.path + " holds " + std::to_string(port.data.size()) +
                        " bytes, expected " + std::to_string(port.bpf * port.frames * port.bytes));
        }
        port.marks.assign(port.frames, 0);
        in_rng.emplace_back(seed + 7919 * p);
    }
    for (std::size_t p = 0; p < outs.size(); ++p) {
        outs[p].frames = frames;
        outs[p].data.assign(outs[p].bpf * frames * outs[p].bytes, 0);
        outs[p].marks.assign(frames, 0);
        out_rng.emplace_back((seed ^ 0x5555555555555555ull) + 104729 * p);
    }

    // Synchronous active-low reset, long enough for any registered reset logic.
    top->ap_rst_n = 0;
    for (Port& p : ins) *p.valid = 0;
    for (Port& p : outs) *p.ready = 0;
    set_dram_base(top.get(), dram_base);
    for (Master& m : masters) {
        *m.arready = 0, *m.rvalid = 0, *m.rlast = 0;
        if (m.write) *m.write->awready = 0, *m.write->wready = 0, *m.write->bvalid = 0;
    }
    for (int i = 0; i < 4; ++i) tick(top.get());
    top->ap_rst_n = 1;

    auto done = [&]() {
        for (const Port& p : ins) if (p.idx < p.bpf * p.frames) return false;
        for (const Port& p : outs) if (p.idx < p.bpf * frames) return false;
        return true;
    };
    uint64_t cycle = 0, idle = 0, data_start = 0;
    while (!done()) {
        // Drive inputs while the clock is low, then sample the handshakes the rising edge takes.
        top->ap_clk = 0;
        bool loading = false;
        for (const Port& p : ins) loading |= p.once && p.idx < p.bpf;
        if (loading) data_start = cycle + 1;  // pacing counts from the end of the loading
        for (std::size_t i = 0; i < ins.size(); ++i) {
            Port& p = ins[i];
            const uint64_t since = p.once ? cycle : cycle - data_start;
            const bool due = (p.once || !loading) && (pace == 0 || p.idx * pace <= since * p.bpf);
            if (!p.presenting && due && p.idx < p.bpf * p.frames && !in_rng[i].chance(stall)) {
                p.put(&p.data[p.idx * p.bytes], p.bytes);
                p.presenting = true;
            }
            *p.valid = p.presenting;
        }
        for (std::size_t o = 0; o < outs.size(); ++o) *outs[o].ready = !out_rng[o].chance(stall);
        for (std::size_t k = 0; k < masters.size(); ++k) {
            Master& m = masters[k];
            *m.arready = !dram_silent && m.queue.size() < 4 && !dram_rng[k].chance(stall);
            if (!m.presenting && !dram_silent && !m.queue.empty() && m.queue.front().due <= cycle &&
                !dram_rng[k].chance(stall)) {
                const Master::Burst& b = m.queue.front();
                m.put_rdata(&dram[b.addr - dram_base + m.beat * m.data_bytes], m.data_bytes);
                m.presenting = true;
                *m.rlast = m.beat + 1 == b.beats;
            }
            *m.rvalid = m.presenting;
            if (Writer* w = m.write.get()) {
                *w->awready = !dram_silent && w->bursts.size() < 4 && !dram_rng[k].chance(stall);
                *w->wready = !dram_silent && !w->bursts.empty() && !dram_rng[k].chance(stall);
                if (!w->answering && !dram_silent && !w->responses.empty() && w->responses.front() <= cycle &&
                    !dram_rng[k].chance(stall)) {
                    w->answering = true;
                }
                *w->bvalid = w->answering;
            }
        }
        top->eval();
        for (Level& l : levels) {  // the handshakes the coming edge takes
            l.level += read_bit(l.in_valid) & read_bit(l.in_ready);
            l.level -= read_bit(l.out_valid) & read_bit(l.out_ready);
            if (l.level > l.max_level) l.max_level = l.level;
        }

        bool fired = false;
        for (Port& p : outs) {
            if (*p.valid && *p.ready) {
                if (p.idx >= p.bpf * frames) fail(4, "output beat beyond the expected count on " + p.name);
                p.get(&p.data[p.idx * p.bytes], p.bytes);
                if ((p.idx + 1) % p.bpf == 0) p.marks[p.idx / p.bpf] = cycle;
                ++p.idx;
                fired = true;
            }
        }
        for (Port& p : ins) {
            if (p.presenting && *p.ready) {
                if (p.idx % p.bpf == 0) p.marks[p.idx / p.bpf] = cycle;
                ++p.idx;
                p.presenting = false;
                fired = true;
            }
        }
        for (Master& m : masters) {
            if (*m.rvalid && *m.rready) {
                ++m.beat;
                m.presenting = false;
                if (m.beat == m.queue.front().beats) {
                    m.queue.erase(m.queue.begin());
                    m.beat = 0;
                }
                fired = true;
            }
            if (*m.arvalid && *m.arready) {
                const uint64_t addr = *m.araddr, beats = static_cast<uint64_t>(*m.arlen) + 1;
                check_burst(m, "read", addr, beats, dram_base, dram.size());
                m.queue.push_back({addr, beats, cycle + dram_latency, cycle});
                fired = true;
            }
            if (Writer* w = m.write.get()) {
                if (*w->bvalid && *w->bready) {
                    w->responses.erase(w->responses.begin());
                    w->answering = false;
                    fired = true;
                }
                if (*w->wvalid && *w->wready) {
                    const Writer::Burst& b = w->bursts.front();
                    if (static_cast<bool>(*w->wlast) != (w->beat + 1 == b.beats)) {
                        fail(5, "DRAM master " + m.name + ": wlast " + std::to_string(*w->wlast) + " on beat " +
                                    std::to_string(w->beat + 1) + " of the write burst at " + hex(b.addr) + " of " +
                                    std::to_string(b.beats) + " beats");
                    }
                    w->get_wdata(&dram[b.addr - dram_base + w->beat * m.data_bytes], m.data_bytes);
                    if (++w->beat == b.beats) {
                        w->bursts.erase(w->bursts.begin());
                        w->beat = 0;
                        w->responses.push_back(cycle + dram_latency);
                    }
                    fired = true;
                }
                if (*w->awvalid && *w->awready) {
                    const uint64_t addr = *w->awaddr, beats = static_cast<uint64_t>(*w->awlen) + 1;
                    check_burst(m, "write", addr, beats, dram_base, dram.size());
                    w->bursts.push_back({addr, beats});
                    fired = true;
                }
            }
        }
        top->ap_clk = 1;
        top->eval();

        idle = fired ? 0 : idle + 1;
        if (idle >= max_idle) {
            std::string progress;
            for (const Port& p : ins) {
                progress += " " + p.name + " " + std::to_string(p.idx) + "/" + std::to_string(p.bpf * p.frames);
            }
            for (const Port& p : outs) {
                progress += " " + p.name + " " + std::to_string(p.idx) + "/" + std::to_string(p.bpf * frames);
            }
            fail(3, "deadlock: no handshake for " + std::to_string(max_idle) + " cycles at cycle " +
                        std::to_string(cycle) + "; beats:" + progress + list_stuck(ins, outs, watches) +
                        waiting_reads(masters, cycle));
        }
        ++cycle;
    }
    const uint64_t total = cycle;

    // A design that emits more beats than a frame holds is wrong even if the counted ones match.
    for (Port& p : ins) *p.valid = 0;
    for (int i = 0; i < 64; ++i) {
        top->ap_clk = 0;
        for (Port& p : outs) *p.ready = 1;
        top->eval();
        for (Port& p : outs) {
            if (*p.valid) fail(4, "output beat beyond the expected count on " + p.name);
        }
        top->ap_clk = 1;
        top->eval();
    }

    top->final();
    for (const Port& p : outs) write_file(p.path, p.data);
    write_stats(stats_path, total, ins, outs, levels);
    return 0;
}
