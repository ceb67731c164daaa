# The native kernels addon: built by `npm run build:native` (build.mjs) with the local Node's
# headers (--nodedir=/usr), against Debian's OpenBLAS, for this machine's CPU.
{
  "targets": [
    {
      "target_name": "iota_native",
      "sources": [
        "csrc/addon.cc", "csrc/pool.cc", "csrc/matmul.cc",
        "csrc/elementwise.cc", "csrc/reduce.cc", "csrc/layout.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions", "-O2", "-O3"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20"],
      # -ffp-contract=off: no silent FMA, so elementwise results do not depend on the CPU.
      "cflags": ["-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-pthread"],
      "cflags_cc": [
        "-std=c++17", "-fexceptions", "-O3", "-march=native", "-ffp-contract=off",
        "-fno-math-errno", "-Wall", "-Wextra", "-Wno-unused-parameter"
      ],
      "libraries": ["-lopenblas", "-lmvec", "-lm", "-pthread"]
    }
  ]
}
