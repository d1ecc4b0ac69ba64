// A plain Verilator testbench of hw.InferenceHarness: C++ only, no cocotb, no Python.
// The baseline of bench/simspeed.py. Reads contexts (one line of k decimal bytes per sample) from
// argv[1]; prints "token cycles" per sample, then the total clock cycles simulated.
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "Vtop.h"
#include "verilated.h"

template <typename T>
static void set_byte(T& port, int index, uint32_t value) {
    const int shift = 8 * index;
    port = (port & ~(T(0xff) << shift)) | (T(value) << shift);
}

template <std::size_t N>
static void set_byte(VlWide<N>& port, int index, uint32_t value) {
    const int shift = 8 * (index % 4);
    uint32_t& word = port[index / 4];
    word = (word & ~(0xffu << shift)) | (value << shift);
}

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s CONTEXTS\n", argv[0]);
        return 2;
    }
    std::ifstream in(argv[1]);
    std::vector<std::vector<uint32_t>> contexts;
    for (std::string line; std::getline(in, line);) {
        std::istringstream fields(line);
        std::vector<uint32_t> bytes;
        for (uint32_t b; fields >> b;) bytes.push_back(b);
        if (!bytes.empty()) contexts.push_back(bytes);
    }
    VerilatedContext context;
    Vtop top{&context};
    uint64_t ticks = 0;
    auto tick = [&] {
        top.clk = 1;
        top.eval();
        top.clk = 0;
        top.eval();
        ++ticks;
    };
    top.clk = 0;
    top.start = 0;
    top.rst = 1;
    top.eval();
    for (int i = 0; i < 3; ++i) tick();
    top.rst = 0;
    for (const auto& bytes : contexts) {
        for (std::size_t p = 0; p < bytes.size(); ++p) set_byte(top.context, int(p), bytes[p]);
        top.start = 1;
        tick();
        top.start = 0;
        tick();
        while (!top.done) tick();
        std::printf("%u %u\n", unsigned(top.token), unsigned(top.cycles));
    }
    std::printf("ticks %llu\n", static_cast<unsigned long long>(ticks));
    top.final();
    return 0;
}
