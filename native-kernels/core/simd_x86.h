// Where x86-64 SIMD may be compiled, and the target attributes that switch it on per function.
//
// The addon is built for baseline x86-64 (never -march=native); AVX2/FMA/F16C code lives only
// in the guarded *_x86.cpp files, each function marked with QL_TARGET_*, and runs only after
// the run-time CPU check in cpu.cpp says the instructions exist. Everywhere else (arm64, or
// -DQL_NO_X86_SIMD to test the portable build) QL_X86_SIMD is 0 and only scalar code exists.
#pragma once

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(QL_NO_X86_SIMD)
#define QL_X86_SIMD 1
#define QL_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define QL_TARGET_AVX2_F16C __attribute__((target("avx2,fma,f16c")))
#else
#define QL_X86_SIMD 0
#endif
