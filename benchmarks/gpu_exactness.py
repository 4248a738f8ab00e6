"""Check every fast SCRN recurrence kernel against the plain loop on one device; PASS/FAIL lines.

For each kernel (scan, tanh-rnn: cuDNN's fused tanh RNN on a GPU) and dtype (float64 tight,
float32 at float32 rounding): the hidden recurrence alone with no mask, a tied batch-shared
mask (carried state masked by a different, previous mask) and an independent one; then the
whole ND+WT small and medium models of params.yaml, one training window (logits, penalty-free
loss, every parameter gradient) and one evaluation window. Also reports whether cuDNN RNN
kernels actually ran for tanh-rnn on CUDA. Exit status 1 if anything fails.

    python -m benchmarks.gpu_exactness --device cuda
"""
from __future__ import annotations

import argparse
import dataclasses
import sys

import torch

from benchmarks import environment as env
from pipeline.config import load_params, run_config
from pipeline.models import build_model, init_uniform
from pipeline.models.scrn import hidden_states

TOLERANCE = {torch.float64: 1e-10, torch.float32: 2e-4}  # max |fast - loop| / max(1, max |loop|)


def relative_error(fast, plain) -> float:
    return max(float((f - p).abs().max()) / max(1.0, float(p.abs().max())) for f, p in zip(fast, plain)) if fast else 0.0


def detached(tensors):
    return tuple(t.detach() for t in tensors)


def recurrence_case(kernel, mode, device, dtype, batch=20, steps=35, d=240):
    gen = torch.Generator().manual_seed(0)
    pre = torch.randn(batch, steps, d, generator=gen, dtype=torch.float64)
    R = torch.randn(d, d, generator=gen, dtype=torch.float64) * (2.0 / d ** 0.5)
    h0 = torch.rand(batch, d, generator=gen, dtype=torch.float64)
    mask = prev = None
    if mode != "none":
        mask = torch.bernoulli(torch.full((1, d), 0.7, dtype=torch.float64), generator=gen) / 0.7
        prev = torch.bernoulli(torch.full((1, d), 0.7, dtype=torch.float64), generator=gen) / 0.7
        if mode == "tied":
            h0 = h0 * prev
    pre, R, h0 = (t.to(device, dtype).requires_grad_() for t in (pre, R, h0))
    mask = None if mask is None else mask.to(device, dtype)
    weights = torch.linspace(-1, 1, batch * steps * d, device=device, dtype=dtype).reshape(batch, steps, d)

    def run(impl):
        h, h_raw = hidden_states(pre, h0, R, mask, mode != "independent", impl)
        loss = (h * weights).sum() + h_raw.square().sum()
        return detached((h, h_raw, *torch.autograd.grad(loss, [pre, h0, R])))

    return relative_error(run(kernel), run("loop"))


def model_case(params, run, kernel, device, dtype):
    cfg = run_config(params, run)

    def build(impl):
        torch.manual_seed(0)
        model = build_model(dataclasses.replace(cfg.model, recurrence_impl=impl), 10_000)
        init_uniform(model, cfg.training.init_scale)
        return model.to(device, dtype)

    x = torch.randint(0, 10_000, (20, 35), generator=torch.Generator().manual_seed(1)).to(device)

    def run_model(model):
        torch.manual_seed(2)  # the same dropout masks for both
        model.train()
        out = model(x, model.zero_state(20, device=device))
        loss = torch.nn.functional.cross_entropy(out.logits.reshape(-1, 10_000), x.reshape(-1)) * 35
        grads = torch.autograd.grad(loss, list(model.parameters()))
        model.eval()
        with torch.no_grad():
            ev = model(x, model.zero_state(20, device=device))
        return detached((out.logits, loss, *grads, ev.logits))

    return relative_error(run_model(build(kernel)), run_model(build("loop")))


def cudnn_rnn_ran(device, dtype) -> bool:
    """Whether aten::_cudnn_rnn (the cuDNN path of rnn_tanh) appears in a profile of tanh-rnn."""
    from torch.profiler import ProfilerActivity, profile
    pre = torch.randn(20, 35, 240, device=device, dtype=dtype, requires_grad=True)
    R = torch.randn(240, 240, device=device, dtype=dtype, requires_grad=True)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        h, _ = hidden_states(pre, torch.zeros(20, 240, device=device, dtype=dtype), R, None, True, "tanh-rnn")
        h.sum().backward()
        torch.cuda.synchronize(device)
    names = [e.key.lower() for e in prof.key_averages()]
    return any("_cudnn_rnn" in n for n in names)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_exactness", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="default: %(default)s")
    parser.add_argument("--models", nargs="*", default=["ptb-small-scrn-nd-wt", "ptb-medium-scrn-nd-wt"],
                        help="runs whose full model is compared (default: %(default)s)")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)
    device = env.resolve(args.device)
    info = env.describe(device)
    print(f"exactness on {info['device_name']}, torch {info['torch']}, cuDNN {info['cudnn']}", flush=True)
    params = load_params(args.params)
    if device.type == "cuda":  # PyTorch's default lets cuDNN (nn.LSTM and our tanh RNN alike) use TF32
        for run in args.models:
            err = model_case(params, run, "tanh-rnn", device, torch.float32)
            print(f"INFO  tanh-rnn float32 model {run} with default TF32 flags "
                  f"(cudnn.allow_tf32={torch.backends.cudnn.allow_tf32}): max rel error {err:.2e}", flush=True)
    # the comparison itself: cuDNN/cuBLAS must not trade exactness for speed
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    failures = 0
    for dtype in (torch.float64, torch.float32):
        tol = TOLERANCE[dtype]
        for kernel in ("scan", "tanh-rnn"):
            cases = [(f"recurrence {mode}", lambda m=mode: recurrence_case(kernel, m, device, dtype))
                     for mode in ("none", "tied", "independent")]
            cases += [(f"model {run}", lambda r=run: model_case(params, r, kernel, device, dtype)) for run in args.models]
            for name, case in cases:
                err = case()
                ok = err <= tol
                failures += not ok
                print(f"{'PASS' if ok else 'FAIL'}  {kernel:8s} {str(dtype)[6:]:7s} {name:36s} max rel error {err:.2e} "
                      f"(tolerance {tol:.0e})", flush=True)
    if device.type == "cuda":
        ran = cudnn_rnn_ran(device, torch.float32)
        failures += not ran
        print(f"{'PASS' if ran else 'FAIL'}  tanh-rnn runs a cuDNN RNN kernel on {info['device_name']}", flush=True)
    print(f"{'ALL PASS' if not failures else f'{failures} FAILED'}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
