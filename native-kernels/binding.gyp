# QuantLens native kernels: core/ is plain C++17, binding/ is the N-API layer (node-addon-api).
# Build: `npm run build:native` (= node-gyp rebuild --directory native-kernels) from the repo root.
#
# Portability: built for baseline x86-64 or arm64, never -march=native. AVX2/FMA/F16C code is
# confined to the *_x86.cpp files behind `#if QL_X86_SIMD` and per-function target attributes,
# chosen at run time (core/cpu.cpp). -ffp-contract=off keeps the scalar path operation for
# operation equal to the TypeScript references (no silent fusing into FMAs).
{
  "targets": [
    {
      "target_name": "quantlens_kernels",
      "sources": [
        "core/cpu.cpp",
        "core/thread_pool.cpp",
        "core/moments.cpp",
        "core/moments_x86.cpp",
        "core/convert.cpp",
        "core/convert_x86.cpp",
        "core/fma_peak.cpp",
        "core/fma_peak_x86.cpp",
        "core/eigen.cpp",
        "core/eigen_band.cpp",
        "core/eigen_blas.cpp",
        "core/eigen_dc.cpp",
        "core/eigen_householder.cpp",
        "core/eigen_tridiagonal.cpp",
        "core/eigen_x86.cpp",
        "binding/eigen_binding.cpp",
        "core/rtn.cpp",
        "core/rtn_x86.cpp",
        "core/pack.cpp",
        "core/hadamard.cpp",
        "core/hadamard_x86.cpp",
        "core/orthogonal.cpp",
        "core/orthogonal_x86.cpp",
        "binding/quant_binding.cpp",
        "binding/transform_binding.cpp",
        "core/channel_stats.cpp",
        "core/channel_stats_x86.cpp",
        "binding/channel_stats_binding.cpp",
        "core/gemm.cpp",
        "core/gemm_x86.cpp",
        "core/hessian.cpp",
        "core/cholesky.cpp",
        "core/cholesky_x86.cpp",
        "core/gptq.cpp",
        "core/gptq_x86.cpp",
        "core/gptq_panel.cpp",
        "core/gptq_loss.cpp",
        "binding/gptq_binding.cpp",
        "binding/addon.cpp",
        "binding/args.cpp",
        "binding/cancel_token.cpp",
        "binding/promise_worker.cpp",
        "binding/system_binding.cpp",
        "binding/moments_binding.cpp",
        "binding/convert_binding.cpp",
        "binding/linalg_binding.cpp",
        "core/cuda_backend.cpp"
      ],
      # The optional CUDA backend is dlopened at run time (core/cuda_backend.cpp): no CUDA link here.
      "conditions": [
        ["OS=='linux'", { "libraries": ["-ldl"] }]
      ],
      # C++ exceptions on, and std::exception thrown from a callback becomes a JS error.
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except_all"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        "NODE_API_NO_EXTERNAL_BUFFERS_ALLOWED"
      ],
      "cflags_cc!": ["-std=gnu++17", "-std=gnu++20", "-O2", "-O3", "-Os"],
      "cflags_cc": [
        "-std=c++17",
        "-O3",
        "-ffp-contract=off",
        "-fvisibility=hidden",
        "-Wall",
        "-Wextra"
      ],
      "xcode_settings": {
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
        "GCC_OPTIMIZATION_LEVEL": "3",
        "GCC_SYMBOLS_PRIVATE_EXTERN": "YES",
        "OTHER_CPLUSPLUSFLAGS": ["-ffp-contract=off"]
      },
      "msvs_settings": {
        "VCCLCompilerTool": {
          "AdditionalOptions": ["/std:c++17", "/fp:precise"],
          "Optimization": 2
        }
      }
    }
  ]
}
