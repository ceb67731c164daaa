#!/usr/bin/env python3
"""PyTorch side of `npm run bench -- kernels`: trains one iota stage (or the whole model) on the CPU
with the same weights, inputs and output gradient (or tokens) as the TypeScript side, and prints
its speed as JSON.

  torch_stage.py DIR [--threads N] [--min-seconds S]

DIR holds config.json (the model config and "stage", the stage index), weights.safetensors
(the stage, iota's parameter names) and io.safetensors (x: the stage input, dy: the gradient of
the stage output, y: iota's stage output on x, used to check both sides compute the same thing).
The model is test/fixtures/pytorch_reference.py, the project's independent PyTorch
implementation. One step: forward, backward of <stage(x), dy>, clip_grad_norm_(1.0), AdamW
(betas 0.9/0.95, eps 1e-8, decay 0.1 on matrices). OpenBLAS reads its thread count from the
environment at import, so the caller sets OPENBLAS_NUM_THREADS per run.
Run with Debian's /usr/bin/python3 (python3-torch 1.13).
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "test" / "fixtures"))
from pytorch_reference import load_safetensors, rope_tables, stage_forward, stage_specs  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--min-seconds", type=float, default=3.0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    d = Path(args.dir)
    meta = json.loads((d / "config.json").read_text())
    c = meta["config"]
    cos, sin = rope_tables(c)
    if meta.get("stage") is None:
        step, tokens, rel_err = whole_model(d, meta, c, cos, sin)
    else:
        step, tokens, rel_err = one_stage(d, meta, c, cos, sin)

    step()  # warm-up
    step()
    times, t0 = [], time.perf_counter()
    while len(times) < 3 or time.perf_counter() - t0 < args.min_seconds:
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    ms = 1000 * statistics.median(times)  # as the TypeScript side: robust to other tenants
    print(json.dumps({"torch": torch.__version__, "threads": args.threads, "steps": len(times),
                      "ms_per_step": ms, "tokens_per_s": tokens * 1000 / ms, "output_rel_err": rel_err}))


def adamw(params):
    matrices = [p for p in params.values() if p.dim() == 2]
    norms = [p for p in params.values() if p.dim() == 1]
    return torch.optim.AdamW([{"params": matrices, "weight_decay": 0.1}, {"params": norms, "weight_decay": 0.0}],
                             lr=1e-4, betas=(0.9, 0.95), eps=1e-8)


def one_stage(d, meta, c, cos, sin):
    spec = stage_specs(c)[meta["stage"]]
    params = {k: v.requires_grad_(True) for k, v in load_safetensors(d / "weights.safetensors").items()}
    io = load_safetensors(d / "io.safetensors")
    x, dy = io["x"], io["dy"]
    opt = adamw(params)
    with torch.no_grad():
        y = stage_forward(spec, params, x, c, cos, sin)
        rel_err = float((y - io["y"]).norm() / io["y"].norm())

    def step():
        xin = x.clone().requires_grad_(True)  # a body stage also returns the input gradient
        out = stage_forward(spec, params, xin, c, cos, sin)
        (out * dy).sum().backward()
        torch.nn.utils.clip_grad_norm_(params.values(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step, x.shape[0] * x.shape[1], rel_err


def whole_model(d, meta, c, cos, sin):
    """Every stage in one graph, the loss as iota's: each sample's mean cross-entropy, summed."""
    specs = stage_specs(c)
    stages = [{k: v.requires_grad_(True) for k, v in load_safetensors(d / f"stage{s['index']}.safetensors").items()}
              for s in specs]
    tokens, targets = torch.tensor(meta["tokens"]), torch.tensor(meta["targets"])
    opts = [adamw(p) for p in stages]  # clipped and stepped per stage, as iota's optimizer

    def loss_of():
        x = tokens
        for spec, p in zip(specs, stages):
            x = stage_forward(spec, p, x, c, cos, sin)
        flat = F.cross_entropy(x.reshape(-1, c["vocab_size"]), targets.reshape(-1), reduction="sum")
        return flat / tokens.shape[1]

    with torch.no_grad():
        loss = float(loss_of())
        rel_err = abs(loss - meta["loss"]) / abs(meta["loss"])

    def step():
        loss_of().backward()
        for p, opt in zip(stages, opts):
            torch.nn.utils.clip_grad_norm_(p.values(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)

    return step, tokens.shape[0] * tokens.shape[1], rel_err


if __name__ == "__main__":
    main()
