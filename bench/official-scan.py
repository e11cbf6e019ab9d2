"""The official CUDA selective scan (mamba_ssm `selective_scan_fn`), f32, timed on the card at hand: the
baseline that bench/webgpu-scan.ts and bench/webgpu-scan-backward.ts are compared with in the same call
(REFERENCE.md's figures are from an H200; the GPU machine sometimes gives an H100).

Inputs as the WebGPU benches: u, delta, z (b, e, l), A (e, n), B and C (b, n, l), D and delta bias (e),
softplus on, no initial state. Forward: `selective_scan_fn` without autograd; fwd+bwd: the forward with
requires_grad on every input, then `backward` of a random dy. Median of --reps CUDA-event timings after
warm-up. The extension is built for float32 by scripts/device/build_selective_scan.py (a few minutes),
unless `selective_scan_cuda` is already importable.

    python3 bench/official-scan.py --mamba-src /path/to/mamba --build-dir /tmp/ss --out scan.json
"""

import argparse
import json
import os
import platform
import sys
import time

import torch

SHAPES = "1x1536x2048x16,4x2048x4096x16,8x5120x2048x16"


def timed(fn, reps):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    return sorted(times)[len(times) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mamba-src", required=True)
    ap.add_argument("--build-dir", default="/tmp/selective_scan_build")
    ap.add_argument("--shapes", default=SHAPES)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    sys.path.insert(0, args.mamba_src)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts", "device"))
    try:
        import selective_scan_cuda  # noqa: F401
    except ImportError:
        import build_selective_scan

        t0 = time.time()
        build_selective_scan.load(args.mamba_src, args.build_dir)
        print(f"built selective_scan_cuda in {time.time() - t0:.0f} s", flush=True)
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

    torch.backends.cuda.matmul.allow_tf32 = False
    # Warm the GPU up out of its idle clock before the first timing.
    x = torch.randn(4096, 4096, device="cuda")
    for _ in range(50):
        x = x @ x
        x = x / x.norm()
    torch.cuda.synchronize()
    rows = []
    for s in args.shapes.split(","):
        b, e, l, n = map(int, s.split("x"))
        g = torch.Generator(device="cuda").manual_seed(0)

        def r(*shape, lo=-1.0, hi=1.0):
            return torch.rand(*shape, device="cuda", generator=g) * (hi - lo) + lo

        u, delta, z = r(b, e, l), r(b, e, l, lo=-4, hi=0), r(b, e, l, lo=-2, hi=2)
        A, D, db = r(e, n, lo=-4, hi=-0.1), r(e, lo=0.5, hi=1.5), r(e, lo=-1, hi=0)
        B, C = r(b, n, l), r(b, n, l)
        dy = r(b, e, l)
        with torch.no_grad():
            fwd = timed(lambda: selective_scan_fn(u, delta, A, B, C, D, z, db, delta_softplus=True), args.reps)
        leaves = [t.clone().requires_grad_() for t in (u, delta, A, B, C, D, z, db)]

        def fb():
            for t in leaves:
                t.grad = None
            y = selective_scan_fn(*leaves[:7], leaves[7], delta_softplus=True)
            y.backward(dy)

        both = timed(fb, args.reps)
        row = dict(shape=s, fwd_ms=round(fwd, 4), fwd_bwd_ms=round(both, 4))
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("| shape (b x e x l x n) | fwd ms | fwd+bwd ms |\n| --- | ---: | ---: |")
    for row in rows:
        print(f"| {row['shape']} | {row['fwd_ms']} | {row['fwd_bwd_ms']} |")
    out = dict(gpu=torch.cuda.get_device_name(0), torch=torch.__version__, python=platform.python_version(),
               command=" ".join(sys.argv), date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), rows=rows)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
