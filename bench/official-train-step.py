"""The official mamba_ssm training step, timed: the baseline for `bench/train.ts --backend webgpu`.

Times full training steps (forward, mean cross-entropy, backward, AdamW) of mamba_ssm's MambaLMHeadModel
in float32 (TF32 off) on random tokens, in the shape given (default mamba-130m / mamba2-130m at length
2048, batch 1), for Mamba-1 (needs the selective_scan_cuda extension: built here for float32
by scripts/device/build_selective_scan.py when missing) and Mamba-2 (Triton SSD; the
plain Conv1d path when causal_conv1d is not installed). mamba_ssm is not a dependency of mamba-ts: point
--mamba-src at a checkout of state-spaces/mamba. A layer kind whose kernels are missing is reported as
such, not skipped silently. Prints a table and writes JSON (GPU, versions, command, figures).

    python3 bench/official-train-step.py --mamba-src /path/to/mamba --out results.json [--seq-len 2048]
"""

import argparse
import json
import os
import platform
import sys
import time

import torch


def step_time(model, ids, opt, steps, warmup):
    def one():
        opt.zero_grad(set_to_none=True)
        logits = model(ids[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss

    for _ in range(warmup):
        one()
    torch.cuda.synchronize()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        one()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2], torch.cuda.max_memory_allocated()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mamba-src", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--d-model", type=int, default=768)
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--vocab", type=int, default=50280)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--kinds", default="Mamba1,Mamba2")
    ap.add_argument("--build-dir", default="/tmp/selective_scan_build",
                    help="where scripts/device/build_selective_scan.py builds selective_scan_cuda if it is missing")
    args = ap.parse_args()
    sys.path.insert(0, args.mamba_src)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts", "device"))
    try:
        import selective_scan_cuda  # noqa: F401
    except ImportError:
        try:
            import build_selective_scan

            build_selective_scan.load(args.mamba_src, args.build_dir)
        except Exception as e:  # Mamba1 then reports the missing extension in its row
            print(f"could not build selective_scan_cuda: {type(e).__name__}: {e}"[:500], flush=True)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    from mamba_ssm.models.config_mamba import MambaConfig
    from mamba_ssm.models.mixer_seq_simple import MambaLMHeadModel

    rows = []
    for kind in args.kinds.split(","):
        row = dict(kind=kind, d_model=args.d_model, layers=args.layers, seq_len=args.seq_len, batch=args.batch)
        try:
            ssm = {"layer": kind}
            if kind == "Mamba2":
                ssm["use_mem_eff_path"] = False  # the fused path needs causal_conv1d's CUDA extension
            cfg = MambaConfig(d_model=args.d_model, n_layer=args.layers, vocab_size=args.vocab, ssm_cfg=ssm,
                              rms_norm=True, residual_in_fp32=True, fused_add_norm=False)
            torch.manual_seed(0)
            model = MambaLMHeadModel(cfg, device="cuda", dtype=torch.float32)
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
            ids = torch.randint(0, args.vocab, (args.batch, args.seq_len + 1), device="cuda")
            torch.cuda.reset_peak_memory_stats()
            sec, mem = step_time(model, ids, opt, args.steps, args.warmup)
            row.update(ok=True, step_ms=round(sec * 1e3, 2), tokens_per_s=round(args.batch * args.seq_len / sec),
                       peak_gib=round(mem / 2**30, 2), params=sum(p.numel() for p in model.parameters()))
            del model, opt
            torch.cuda.empty_cache()
        except Exception as e:
            row.update(ok=False, error=f"{type(e).__name__}: {e}"[:500])
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("| layer | tokens/s | step (ms) | peak GiB |\n| --- | ---: | ---: | ---: |")
    for r in rows:
        if r["ok"]:
            print(f"| {r['kind']} | {r['tokens_per_s']} | {r['step_ms']} | {r['peak_gib']} |")
        else:
            print(f"| {r['kind']} | not run: {r['error'][:80]} | | |")
    out = dict(gpu=torch.cuda.get_device_name(0), torch=torch.__version__, python=platform.python_version(),
               command=" ".join(sys.argv), date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), rows=rows)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
