"""Check every fast SCRN recurrence kernel against the plain loop on one device; PASS/FAIL lines.

For each kernel (scan; tanh-rnn, cuDNN's fused tanh RNN on a GPU; triton, the persistent Triton
kernels, on CUDA where Triton is installed) and dtype (float64 tight, float32 at float32
rounding): the hidden recurrence alone with no mask, a tied batch-shared mask (carried state
masked by a different, previous mask), an independent one, the medium width 750 and a ragged
100 x batch 7 (partial blocks); then the
whole ND+WT small and medium models of params.yaml, one training window (logits, penalty-free
loss, every parameter gradient) and one evaluation window. Also reports whether cuDNN RNN
kernels actually ran for tanh-rnn on CUDA. Then the training step captured as one CUDA graph
(pipeline/train/graphed.py, training.cuda_graph; with the auto kernel and with triton) against
the eager trainer, dropout off: two
epochs of windows with carried state, a clip norm that clips every window and an LR change
(parameters, carried state, summed cross-entropy); and with dropout on, that replays draw new
masks and give losses like the eager step's. Exit status 1 if anything fails.

    python -m benchmarks.gpu_exactness --device cuda
"""

from __future__ import annotations

import dataclasses
import sys

import torch

from benchmarks import environment as env
from pipeline.cli import add_params, command_parser
from pipeline.config import load_params, run_config
from pipeline.models import build_model, init_uniform
from pipeline.models.common import detach_state
from pipeline.models.recurrence import triton_installed
from pipeline.models.scrn import hidden_states
from pipeline.train import loop
from pipeline.train.graphed import GraphedStep, flatten_state

TOLERANCE = {torch.float64: 1e-10, torch.float32: 2e-4}  # max |fast - loop| / max(1, max |loop|)
# graph vs eager over 5 SGD steps: the update p - lr g rounds once more than add_(alpha=-lr)
GRAPH_TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-4}


def relative_error(fast, plain) -> float:
    return (
        max(float((f - p).abs().max()) / max(1.0, float(p.abs().max())) for f, p in zip(fast, plain)) if fast else 0.0
    )


def detached(tensors):
    return tuple(t.detach() for t in tensors)


def recurrence_case(kernel, mode, device, dtype, batch=20, steps=35, d=240):
    """Max relative error of one kernel against the loop: values and gradients of pre, h0, R."""
    gen = torch.Generator().manual_seed(0)
    pre = torch.randn(batch, steps, d, generator=gen, dtype=torch.float64)
    R = torch.randn(d, d, generator=gen, dtype=torch.float64) * (2.0 / d**0.5)
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


GRAPH_EPOCHS = ((1.0, 3), (0.3, 2))  # (lr, windows): an LR change and a state reset between epochs
GRAPH_CLIP = 0.1  # far below the gradient norm of a 35-step window: every window is clipped


def graph_case(params, run, device, dtype, kernel="auto"):
    """Max relative difference of the captured step from the eager trainer, dropout off."""
    cfg = run_config(params, run)
    model_cfg = dataclasses.replace(cfg.model, dropout=type(cfg.model.dropout)(), recurrence_impl=kernel)
    x = torch.randint(0, 10_000, (20, 35 * 5 + 1), generator=torch.Generator().manual_seed(1)).to(device)
    wins = [(x[:, k * 35 : (k + 1) * 35], x[:, k * 35 + 1 : (k + 1) * 35 + 1]) for k in range(5)]

    def build():
        torch.manual_seed(0)
        model = build_model(model_cfg, 10_000)
        init_uniform(model, cfg.training.init_scale)
        return model.to(device, dtype).train()

    ref, got = build(), build()
    out_ref, out_got, it = [], [], 0
    for lr, n in GRAPH_EPOCHS:
        state, total = ref.zero_state(20, device=device), torch.zeros((), dtype=torch.float64, device=device)
        for x_, y_ in wins[it : it + n]:
            loss, mean_ce, state = loop.window_loss(ref, x_, y_, detach_state(state))
            loop.sgd_step(ref, loss, lr, GRAPH_CLIP)
            total += mean_ce.detach().double()
        out_ref += [total, *flatten_state(detach_state(state))]
        it += n
    step = GraphedStep(got, 20, 35, device, GRAPH_CLIP, capture=device.type == "cuda")
    it = 0
    for lr, n in GRAPH_EPOCHS:
        step.set_lr(lr)
        step.start_epoch()
        for x_, y_ in wins[it : it + n]:
            step.step(x_, y_)
        total, bad, _ = step.end_epoch()
        assert bad == 0
        out_got += [torch.tensor(total, dtype=torch.float64, device=device), *flatten_state(step.carried_state())]
        it += n
    out_ref += [p.detach() for p in ref.parameters()]
    out_got += [p.detach() for p in got.parameters()]
    return relative_error(detached(out_got), detached(out_ref))


def graph_dropout_case(params, run, device) -> tuple[bool, str]:
    """Dropout on, LR 0: replays of one window from the zero state must differ (fresh masks) and
    their losses must be finite and within the spread of eager steps with their own masks."""
    cfg = run_config(params, run)
    torch.manual_seed(0)
    model = build_model(cfg.model, 10_000)
    init_uniform(model, cfg.training.init_scale)
    model.to(device).train()
    x = torch.randint(0, 10_000, (20, 36), generator=torch.Generator().manual_seed(1)).to(device)
    xw, yw = x[:, :-1], x[:, 1:]
    eager = []
    with torch.no_grad():  # no autograd graph may outlive these steps: its AccumulateGrad nodes
        for _ in range(8):  # on the default stream would invalidate the capture below
            eager.append(float(loop.window_loss(model, xw, yw, model.zero_state(20, device=device))[1]))
    step = GraphedStep(model, 20, 35, device, cfg.training.clip_norm, capture=device.type == "cuda")
    step.set_lr(0.0)
    graphed = []
    for _ in range(8):
        step.start_epoch()
        step.step(xw, yw)
        graphed.append(step.end_epoch()[0])
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    spread = max(eager) - min(eager)
    ok = (
        len(set(graphed)) == len(graphed)
        and all(map(lambda v: v == v and abs(v) < float("inf"), graphed))
        and abs(mean(graphed) - mean(eager)) <= max(spread, 1e-3 * abs(mean(eager)))
    )
    return ok, (
        f"graph mean CE {mean(graphed):.5f} ({len(set(graphed))}/8 distinct), eager {mean(eager):.5f} "
        f"(spread {spread:.5f})"
    )


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


def checked(case) -> tuple[bool, str]:
    """Run one case; an exception (a kernel that fails to compile, say) is a FAIL, not the end."""
    try:
        return case()
    except Exception as exc:  # noqa: BLE001 - report and go on
        return False, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("benchmarks.gpu_exactness", __doc__)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="default: %(default)s")
    parser.add_argument(
        "--models",
        nargs="*",
        default=["ptb-small-scrn-nd-wt", "ptb-medium-scrn-nd-wt"],
        help="runs whose full model is compared (default: %(default)s)",
    )
    parser.add_argument(
        "--kernels",
        nargs="+",
        choices=("scan", "tanh-rnn", "triton"),
        help="fast kernels to check (default: scan, tanh-rnn, and triton on CUDA where installed)",
    )
    parser.add_argument(
        "--graph-kernels",
        nargs="*",
        help="kernels whose captured training step is checked (default: auto, and triton where checked)",
    )
    add_params(parser)
    args = parser.parse_args(argv)
    device = env.resolve(args.device)
    info = env.describe(device)
    kernels = args.kernels or ["scan", "tanh-rnn"] + (
        ["triton"] if device.type == "cuda" and triton_installed() else []
    )
    graph_kernels = (
        args.graph_kernels if args.graph_kernels is not None else ["auto"] + (["triton"] if "triton" in kernels else [])
    )
    print(
        f"exactness on {info['device_name']}, torch {info['torch']}, cuDNN {info['cudnn']}; kernels "
        f"{', '.join(kernels)}; captured steps {', '.join(graph_kernels) or 'none'}",
        flush=True,
    )
    params = load_params(args.params)
    if device.type == "cuda" and "tanh-rnn" in kernels:  # PyTorch's default lets cuDNN use TF32
        for run in args.models:
            err = model_case(params, run, "tanh-rnn", device, torch.float32)
            print(
                f"INFO  tanh-rnn float32 model {run} with default TF32 flags "
                f"(cudnn.allow_tf32={torch.backends.cudnn.allow_tf32}): max rel error {err:.2e}",
                flush=True,
            )
    # the comparison itself: cuDNN/cuBLAS must not trade exactness for speed
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    failures = 0

    def record(label, name, ok, what):
        nonlocal failures
        failures += not ok
        print(f"{'PASS' if ok else 'FAIL'}  {label:22s} {name:36s} {what}", flush=True)

    def report(label, name, tol, case):
        def judged():
            err = case()
            return err <= tol, f"max rel error {err:.2e} (tolerance {tol:.0e})"

        record(label, name, *checked(judged))

    for dtype in (torch.float32, torch.float64):
        tol = TOLERANCE[dtype]
        for kernel in kernels:
            label = f"{kernel:8s} {str(dtype)[6:]:7s}"
            for mode in ("none", "tied", "independent"):
                report(label, f"recurrence {mode}", tol, lambda m=mode: recurrence_case(kernel, m, device, dtype))
            # the medium width (several programs of the Triton kernel) and a ragged one (masked columns)
            for batch, d in ((20, 750), (7, 100)):
                report(
                    label,
                    f"recurrence none {batch}x{d}",
                    tol,
                    lambda b=batch, w=d: recurrence_case(kernel, "none", device, dtype, batch=b, d=w),
                )
            for run in args.models:
                report(label, f"model {run}", tol, lambda r=run: model_case(params, r, kernel, device, dtype))
    if device.type == "cuda" and "tanh-rnn" in kernels:
        ran = cudnn_rnn_ran(device, torch.float32)
        failures += not ran
        print(f"{'PASS' if ran else 'FAIL'}  tanh-rnn runs a cuDNN RNN kernel on {info['device_name']}", flush=True)
    # the captured training step (on a CPU, a dry run of the same code uncaptured)
    for kernel in graph_kernels:
        for dtype in (torch.float32, torch.float64):
            for run in args.models:
                report(
                    f"graph {kernel:8s} {str(dtype)[6:]:7s}",
                    f"step {run}",
                    GRAPH_TOLERANCE[dtype],
                    lambda r=run: graph_case(params, r, device, dtype, kernel),
                )
    for run in args.models:
        record("graph dropout", f"replays {run}", *checked(lambda r=run: graph_dropout_case(params, r, device)))
    print(f"{'ALL PASS' if not failures else f'{failures} FAILED'}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
