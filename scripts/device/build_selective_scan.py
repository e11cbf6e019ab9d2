"""Build mamba_ssm's CUDA selective scan (`selective_scan_cuda`) for float32 only, in a few minutes.

The official kernels are the baseline of bench/official-scan.py and bench/official-train-step.py, but
the GPU machine has no prebuilt mamba_ssm and its full build compiles 15 large CUDA files for every
architecture. This builds the two float32 files (forward with real and complex A, backward with real A)
for the one GPU present; every other dtype combination is linked to a stub that raises, so a call that
needs one fails loudly instead of running something else. mamba_ssm is not a dependency of mamba-ts:
point --mamba-src at a checkout of state-spaces/mamba.

    python3 scripts/device/build_selective_scan.py --mamba-src /path/to/mamba --build-dir /tmp/ss

Library use: `load(mamba_src, build_dir)` builds (or reuses the build) and registers the module as
`selective_scan_cuda`, the name mamba_ssm imports.
"""

import argparse
import os
import sys
import time

STUB = r"""
#include <stdexcept>
#include <cuda_runtime.h>
#include <c10/util/complex.h>
#include <c10/util/Half.h>
#include <c10/util/BFloat16.h>
#include "selective_scan.h"
using complex_t = c10::complex<float>;
template<typename input_t, typename weight_t> void selective_scan_fwd_cuda(SSMParamsBase &params, cudaStream_t stream);
template<typename input_t, typename weight_t> void selective_scan_bwd_cuda(SSMParamsBwd &params, cudaStream_t stream);
#define STUB(F, P, I, W) template<> void F<I, W>(P &, cudaStream_t) { \
    throw std::runtime_error(#F "<" #I ", " #W ">: this build of selective_scan_cuda has float32 only"); }
STUB(selective_scan_fwd_cuda, SSMParamsBase, at::Half, float)
STUB(selective_scan_fwd_cuda, SSMParamsBase, at::Half, complex_t)
STUB(selective_scan_fwd_cuda, SSMParamsBase, at::BFloat16, float)
STUB(selective_scan_fwd_cuda, SSMParamsBase, at::BFloat16, complex_t)
STUB(selective_scan_bwd_cuda, SSMParamsBwd, float, complex_t)
STUB(selective_scan_bwd_cuda, SSMParamsBwd, at::Half, float)
STUB(selective_scan_bwd_cuda, SSMParamsBwd, at::Half, complex_t)
STUB(selective_scan_bwd_cuda, SSMParamsBwd, at::BFloat16, float)
STUB(selective_scan_bwd_cuda, SSMParamsBwd, at::BFloat16, complex_t)
"""


def load(mamba_src, build_dir, verbose=False):
    import torch
    from torch.utils.cpp_extension import load as load_ext

    src = os.path.join(mamba_src, "csrc", "selective_scan")
    os.makedirs(build_dir, exist_ok=True)
    stub = os.path.join(build_dir, "selective_scan_stubs.cu")
    with open(stub, "w") as f:
        f.write(STUB)
    major, minor = torch.cuda.get_device_capability()
    arch = f"{major}{minor}"
    os.environ.setdefault("MAX_JOBS", str(os.cpu_count() or 4))
    mod = load_ext(
        name="selective_scan_cuda",
        sources=[os.path.join(src, f) for f in
                 ("selective_scan.cpp", "selective_scan_fwd_fp32.cu", "selective_scan_bwd_fp32_real.cu")] + [stub],
        extra_include_paths=[src],
        extra_cflags=["-O3", "-std=c++17"],
        extra_cuda_cflags=["-O3", "-std=c++17", "-U__CUDA_NO_HALF_OPERATORS__", "-U__CUDA_NO_HALF_CONVERSIONS__",
                           "-U__CUDA_NO_BFLOAT16_OPERATORS__", "-U__CUDA_NO_BFLOAT16_CONVERSIONS__",
                           "-U__CUDA_NO_BFLOAT162_OPERATORS__", "-U__CUDA_NO_BFLOAT162_CONVERSIONS__",
                           "--expt-relaxed-constexpr", "--expt-extended-lambda", "--use_fast_math",
                           "-lineinfo", "--threads", "4", "-gencode", f"arch=compute_{arch},code=sm_{arch}"],
        build_directory=build_dir,
        verbose=verbose,
    )
    sys.modules["selective_scan_cuda"] = mod
    return mod


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mamba-src", required=True)
    ap.add_argument("--build-dir", required=True)
    args = ap.parse_args()
    t0 = time.time()
    load(args.mamba_src, args.build_dir, verbose=True)
    print(f"selective_scan_cuda built in {time.time() - t0:.0f} s into {args.build_dir}")


if __name__ == "__main__":
    main()
