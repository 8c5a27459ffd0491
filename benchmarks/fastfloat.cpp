// fast_float's from_chars over the numbers of a file's first BYTES bytes (whitespace
// separated), timed in one pass: the parser that the "1 GB/s" figures come from, here as a
// peer of mlxrun's sum_text. Parse and an inexact double sum only. Built and run by
// kernels.py. Usage: fastfloat FILE BYTES -> "SECONDS COUNT SUM"
#include <fast_float/fast_float.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    FILE *f = std::fopen(argv[1], "rb");
    if (f == nullptr) return 2;
    std::vector<char> text(std::strtoul(argv[2], nullptr, 10));
    size_t n = std::fread(text.data(), 1, text.size(), f);
    std::fclose(f);
    while (n > 0 && text[n - 1] != '\n') n--;  // whole lines, as kernels.py cuts them
    auto start = std::chrono::steady_clock::now();
    const char *p = text.data(), *end = p + n;
    double sum = 0;
    long count = 0;
    while (p < end) {
        while (p < end && (*p == '\n' || *p == ' ' || *p == '\t' || *p == '\r')) p++;
        if (p == end) break;
        double value;
        auto parsed = fast_float::from_chars(p, end, value);
        if (parsed.ec != std::errc()) return 1;
        sum += value;
        count++;
        p = parsed.ptr;
    }
    std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    std::printf("%.6f %ld %.17g\n", took.count(), count, sum);
    return 0;
}
