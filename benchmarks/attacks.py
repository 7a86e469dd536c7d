"""Cost of the kit's attacks against their floors, and the kit's Square attack against torchattacks' at equal queries.

1. **PGD against its floor.** Any K-step gradient attack needs at least K forward passes and K backward passes to the
   input; what PGD adds is the projection, the step and the bookkeeping of the best iterate (plus one forward pass per
   restart for the last iterate). Target: a ratio within 1.05. The floor's own speed is then set against the
   machine's: its floating-point operations, counted by torch's ``FlopCounterMode`` (convolutions and matrix
   products; a multiply-add is two), over its seconds, beside the rate of a dense float32 matrix product on the same
   device and threads (the practical ceiling of this hardware for this library). A floor far below that rate leaves
   room for a faster implementation; near it, an attack costs what its passes cost. On the CPU, torch's profiler
   splits one pass's time between the operations counted (convolutions, matrix products) and the rest (activations,
   pooling, their backward passes, copies), which move memory and count no operations.
2. **Square against its floor.** A Q-query score-based attack needs at least Q forward passes; what Square adds is
   drawing the squares, building the candidates and keeping the best point. The budget (1e-6) is too small to fool
   the model, whose logit 0 is raised by 100 for the images labelled 0, so every image takes all Q queries and the
   floor is exactly Q forward passes of the batch (without gradients, in eval mode). Target: a ratio within 1.10.
3. **The kit's Square against torchattacks'** (3.5.1, a port of AutoAttack's) at equal queries, on the same model,
   images, norm, budget and p_init: the robust accuracy each leaves on the images the model gets right (lower is
   stronger) and the seconds each takes. torchattacks gets ``n_queries = Q - 1``: its start and Q - 1 searches are Q
   queries an image, as the kit's ``queries = Q``.

4. **The ensemble's cost** (notebook 03's ``attacks.ensemble`` of a profile, ``--profile``): every registered attack
   at its budgets on the batch, on :class:`Unfoolable` (nothing is fooled, so every attack spends its whole budget:
   the upper bound the profile's comment counts), its seconds, its ratio to PGD at the headline L-inf budget, and its
   cost counted in forward passes (a backward pass counted as two); the transfer attack is crafted once for all
   models, so its row is one crafting. Square's row is its time against Q forward passes (part 2) scaled up.

The classifier of part 3 is a run folder's (``--run-dir``, ``--model``: the test images it classifies correctly) or,
without one, paper 001's network at the chosen width fitted for ``--fit-steps`` Adam steps to synthetic images (noise
with a bright disc on the positives), which is said in the output.

torchattacks is not a dependency of the kit, not even an optional one: version 3.5.1 requires ``requests~=2.25.1``,
which cannot be installed beside JupyterLab's ``requests>=2.31``, so pip cannot resolve an extra that holds both.
Its code needs nothing the kit lacks; install it alone with ``pip install --no-deps "torchattacks==3.5.1"``.

    python benchmarks/attacks.py                       # CPU, the default profile's classifier shape, image size and K
    python benchmarks/attacks.py --run-dir results/default-... --norm l2 --eps 0.5
    python benchmarks/attacks.py --device cuda --size 256 --width 1.0 --batch 64
    python benchmarks/attacks.py --skip pgd square compare --profile default     # the ensemble's cost alone
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from medadv.attacks.ensemble import ensemble_attacks
from medadv.attacks.gradient import pgd
from medadv.attacks.robustness import AttackConfig
from medadv.attacks.square import square
from medadv.attacks.transfer import transfer_pgd
from medadv.config import load_profile, pick_device, section_config
from medadv.data.images import load_split
from medadv.layout import RunLayout
from medadv.models.classifier import VGGClassifier, VGGConfig
from medadv.models.inference import eval_mode, predicted_labels
from medadv.models.registry import load_model_checkpoint
from torch.utils.flop_counter import FlopCounterMode


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _once(fn, device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def _timed_pair(a, b, device: torch.device, repeats: int) -> tuple[float, float]:
    """Shortest wall time of ``a`` and of ``b`` over ``repeats`` interleaved runs, after one warm-up run of each.

    Interleaving and taking the minimum (as ``timeit`` does) keep the ratio fair on a machine shared with other work.
    """
    a(), b()
    times_a, times_b = [], []
    for _ in range(repeats):
        times_a.append(_once(a, device))
        times_b.append(_once(b, device))
    return min(times_a), min(times_b)


def floor_flops(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """Floating-point operations of one forward pass and one backward pass to the input, as the floor runs them.

    The parameters are frozen while counting, so that ``backward()`` computes the input's gradient alone, as
    ``torch.autograd.grad(loss, x)`` does (``FlopCounterMode``'s module tracker refuses ``autograd.grad`` on a leaf).

    Returns:
        The count (a multiply-add counted as two operations).
    """
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        with eval_mode(model), FlopCounterMode(display=False) as counter:
            xr = x.detach().requires_grad_(True)
            F.cross_entropy(model(xr), y).backward()
    finally:
        for p in frozen:
            p.requires_grad_(True)
    return int(counter.get_total_flops())


def matmul_rate(device: torch.device, repeats: int, n: int = 2048) -> float:
    """Operations per second of a dense float32 ``n`` x ``n`` matrix product, the best of ``repeats`` after a warm-up.

    Returns:
        The rate in operations per second (``2 n^3`` operations a product).
    """
    generator = torch.Generator().manual_seed(0)
    a = torch.rand(n, n, generator=generator).to(device)
    b = torch.rand(n, n, generator=generator).to(device)
    a @ b
    return 2 * n**3 / min(_once(lambda: a @ b, device) for _ in range(repeats))


#: The profiler's names of the operations ``FlopCounterMode`` counts, as they run on the CPU.
COUNTED_OPS = ("aten::mkldnn_convolution", "aten::convolution_backward", "aten::addmm", "aten::mm")


def counted_share(pass_fn) -> float:
    """Share of the operator time of ``pass_fn`` on the CPU (self time, summed over operators) in :data:`COUNTED_OPS`.

    Returns:
        The share in [0, 1].
    """
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        pass_fn()
    events = [e for e in prof.key_averages() if not e.key.startswith(("autograd::", "torch::autograd::"))]
    total = sum(e.self_cpu_time_total for e in events)
    return sum(e.self_cpu_time_total for e in events if e.key in COUNTED_OPS) / total


def pgd_against_floor(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, args: argparse.Namespace, device: torch.device
) -> None:
    """Part 1: K-step PGD against K forward-and-backward passes."""
    eps = 2 / 255

    def floor() -> None:
        with eval_mode(model):
            for _ in range(args.steps):
                xr = x.detach().requires_grad_(True)
                torch.autograd.grad(F.cross_entropy(model(xr), y), xr)

    def attack() -> None:
        pgd(model, x, y, eps, 2.5 * eps / args.steps, args.steps, generator=torch.Generator().manual_seed(0))

    t_floor, t_attack = _timed_pair(floor, attack, device, args.repeats)
    print(f"K x (forward + backward): {t_floor * 1e3:9.1f} ms")
    print(f"PGD, {args.steps} steps:        {t_attack * 1e3:9.1f} ms")
    print(f"ratio PGD / floor:        {t_attack / t_floor:9.3f}   (target <= 1.05)")
    print(f"PGD images per second:    {args.batch / t_attack:9.1f}")
    flops = floor_flops(model, x, y) * args.steps
    rate, ceiling = flops / t_floor, matmul_rate(device, args.repeats)
    per_pass = flops / args.steps / len(x)
    print(f"floor operations:         {flops / 1e9:9.2f} G   ({per_pass / 1e6:.1f} M an image a pass)")
    print(f"floor rate:               {rate / 1e9:9.1f} G/s")
    print(f"dense matmul rate:        {ceiling / 1e9:9.1f} G/s   (float32 2048 x 2048, same device and threads)")
    print(f"floor / matmul rate:      {rate / ceiling:9.3f}")
    if device.type == "cpu":
        share = counted_share(floor)
        print(
            f"counted operations' time: {share:9.3f} of the floor's, at {rate / share / 1e9:.1f} G/s "
            f"({rate / share / ceiling:.3f} of the matmul rate); the rest moves memory"
        )


class Unfoolable(torch.nn.Module):
    """``model`` with 100 added to logit 0: images labelled 0 stay class 0 under any budget too small to move the
    logits by 100, so a Square run spends every query (the floor's premise); the addition costs nothing."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        return logits + torch.tensor([100.0, 0.0], device=logits.device, dtype=logits.dtype)


def square_against_floor(
    model: torch.nn.Module, x: torch.Tensor, args: argparse.Namespace, device: torch.device
) -> None:
    """Part 2: Q-query Square (nothing fooled) against Q forward passes of the batch, on :class:`Unfoolable`."""
    queries = args.floor_queries
    model = Unfoolable(model)
    y = torch.zeros(len(x), dtype=torch.long, device=device)
    used = []

    def floor() -> None:
        with eval_mode(model), torch.no_grad():
            for _ in range(queries):
                model(x)

    def attack() -> None:
        used.append(
            square(
                model, x, y, 1e-6, queries=queries, norm=args.norm, generator=torch.Generator().manual_seed(0)
            ).queries
        )

    t_floor, t_attack = _timed_pair(floor, attack, device, args.repeats)
    spent = int(used[-1].sum())
    print(f"Q x forward ({queries} queries):  {t_floor * 1e3:9.1f} ms")
    print(
        f"Square {args.norm}, eps 1e-6:      {t_attack * 1e3:9.1f} ms   ({spent} of {queries * len(x)} queries spent)"
    )
    print(f"ratio Square / floor:       {t_attack / t_floor:9.3f}   (target <= 1.10)")


def _synthetic(n: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` noise images with a bright disc on every other one (the positives)."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0.2, 0.5, size=(n, 1, size, size)).astype(np.float32)
    labels = (np.arange(n) % 2 == 0).astype(np.int64)
    yy, xx = np.mgrid[:size, :size]
    for i in np.flatnonzero(labels):
        cy, cx = rng.integers(size // 4, 3 * size // 4, size=2)
        images[i, 0][(yy - cy) ** 2 + (xx - cx) ** 2 <= (size // 10) ** 2] += 0.3
    return torch.from_numpy(images.clip(0, 1)), torch.from_numpy(labels)


def fitted_classifier(args: argparse.Namespace, device: torch.device) -> tuple[torch.nn.Module, str]:
    """Paper 001's network at ``--width``, fitted for ``--fit-steps`` Adam steps to synthetic images.

    Returns:
        (the model in eval mode, a line that says what it is and its training accuracy).
    """
    torch.manual_seed(0)
    model = VGGClassifier(VGGConfig(width=args.width, init="random")).to(device)
    x, y = _synthetic(256, args.size, seed=1)
    x, y = x.to(device), y.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=3e-4)
    model.train()
    for step in range(args.fit_steps):
        batch = torch.arange(step * 32, (step + 1) * 32) % len(x)
        opt.zero_grad()
        F.cross_entropy(model(x[batch]), y[batch]).backward()
        opt.step()
    model.eval()
    accuracy = float((predicted_labels(model, x) == y).float().mean())
    return (
        model,
        f"VGG11 width {args.width} fitted {args.fit_steps} steps to synthetic discs (train accuracy {accuracy:.2f})",
    )


def run_folder_classifier(
    args: argparse.Namespace, device: torch.device
) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor, str]:
    """The run folder's ``--model`` and its test split.

    Returns:
        (model in eval mode, test images, labels, a line that says what they are).
    """
    run_dir = Path(args.run_dir)
    profile = json.loads((run_dir / "config.json").read_text())["profile"]
    cohort = pd.read_csv(run_dir / "cohort.csv", dtype={"image_id": str, "patient_id": str}, keep_default_na=False)
    root = Path(profile["data"]["root"]) if profile["data"].get("root") else run_dir
    test = load_split(cohort, root, tuple(profile["data"]["image_size"]), "test")
    model, _ = load_model_checkpoint(RunLayout(run_dir).checkpoint(args.model), device)
    return model, torch.from_numpy(test.images), torch.from_numpy(test.labels), f"{args.model} of {run_dir}"


def square_against_torchattacks(args: argparse.Namespace, device: torch.device) -> None:
    """Part 3: the kit's Square and torchattacks' at equal queries on the correctly classified images."""
    try:
        import torchattacks
    except ImportError:
        print(
            "torchattacks is not installed: the comparison needs it. Install it alone (its pinned requests cannot "
            'sit beside JupyterLab\'s): pip install --no-deps "torchattacks==3.5.1"'
        )
        raise SystemExit(2) from None
    if args.run_dir:
        model, x, y, what = run_folder_classifier(args, device)
    else:
        model, what = fitted_classifier(args, device)
        x, y = _synthetic(4 * args.compare_images, args.size, seed=2)
    right = (predicted_labels(model, x) == y).cpu()
    x, y = x[right][: args.compare_images].to(device), y[right][: args.compare_images].to(device)
    queries, eps, norm = args.compare_queries, args.eps, args.norm
    print(f"\n{what}: {len(x)} correctly classified images, {norm} eps {eps:.5g}, {queries} queries, p_init 0.8")
    kit = {}
    t_kit = _once(
        lambda: kit.update(
            r=square(model, x, y, eps, queries=queries, norm=norm, generator=torch.Generator().manual_seed(0))
        ),
        device,
    )
    peer = torchattacks.Square(
        model, norm={"linf": "Linf", "l2": "L2"}[norm], eps=eps, n_queries=queries - 1, p_init=0.8, seed=0
    )
    out = {}
    t_peer = _once(lambda: out.update(x=peer(x, y)), device)
    for name, images, seconds in (("kit", kit["r"].images, t_kit), ("torchattacks", out["x"], t_peer)):
        accuracy = float((predicted_labels(model, images) == y).float().mean())
        size = (images - x).flatten(1)
        size = size.abs().amax(1) if norm == "linf" else size.norm(dim=1)
        print(
            f"{name:>13}: robust accuracy {accuracy:6.3f}   {seconds:7.2f} s   largest perturbation "
            f"{float(size.max()):.5g}"
        )
    print(
        f"          kit: {float(kit['r'].queries.float().mean()):.1f} queries an image on average "
        f"(median {float(kit['r'].queries.float().median()):.0f})"
    )


def _forward_passes(family: str, steps: int, restarts: int) -> int:
    """An attack's cost per image in forward passes, every step spent: a gradient step is a forward and a backward
    pass (counted as two), Square's query one forward pass; one more forward pass per restart for the last iterate."""
    if family == "score_based":
        return steps
    return 3 * steps * restarts + (restarts if steps > 1 else 0)


def ensemble_cost(model: torch.nn.Module, x: torch.Tensor, args: argparse.Namespace, device: torch.device) -> None:
    """Part 4: every attack of a profile's ensemble, timed on :class:`Unfoolable` and counted in forward passes."""
    config = section_config(AttackConfig, load_profile(args.profile).section("attacks"), "attacks")
    model = Unfoolable(model)
    y = torch.zeros(len(x), dtype=torch.long, device=device)
    rows, generator = [], torch.Generator().manual_seed(0)
    for spec in ensemble_attacks(config):
        steps, restarts = spec.setting(config)
        for norm in spec.norms:
            for eps in spec.budgets(config, norm):
                if spec.on_surrogate:

                    def run() -> None:
                        transfer_pgd(
                            model,
                            {"target": model},
                            x.cpu(),
                            y.cpu(),
                            eps,
                            norm=norm,
                            steps=config.steps,
                            step_ratio=config.step_ratio,
                            restarts=config.restarts,
                            device=device,
                            batch_size=len(x),
                        )
                else:
                    attack = spec.build(config, norm, eps)

                    def run() -> None:
                        attack(model, x, y, generator)

                rows.append(
                    {
                        "attack": spec.name,
                        "norm": norm,
                        "eps": eps,
                        "seconds": _once(run, device),
                        "forward_passes": _forward_passes(spec.family, steps, restarts),
                    }
                )
    table = pd.DataFrame(rows)
    pgd_row = table[
        (table["attack"] == "pgd") & (table["norm"] == "linf") & np.isclose(table["eps"], config.headline_linf_eps)
    ].iloc[0]
    table["ratio_to_pgd"] = table["seconds"] / pgd_row["seconds"]
    print(
        f"\nthe {args.profile} profile's ensemble on {len(x)} images (Unfoolable: every step and query spent; "
        "forward passes per image, a backward pass counted as two):"
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(
        f"total: {table['seconds'].sum():.2f} s, {int(table['forward_passes'].sum())} forward passes an image "
        f"(the transfer rows once for all models)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", type=int, default=96, help="image side in pixels")
    parser.add_argument("--width", type=float, default=0.125, help="VGG11 channel multiplier")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20, help="K, the PGD steps")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--floor-queries", type=int, default=100, help="Square's queries against its floor")
    parser.add_argument("--norm", choices=("linf", "l2"), default="linf")
    parser.add_argument("--eps", type=float, default=2 / 255, help="budget of the Square comparison")
    parser.add_argument("--compare-queries", type=int, default=1000, help="queries of the Square comparison")
    parser.add_argument("--compare-images", type=int, default=64)
    parser.add_argument("--run-dir", help="a run folder whose classifier and test split the comparison uses")
    parser.add_argument("--model", default="vgg_erm", help="the run folder's classifier")
    parser.add_argument("--fit-steps", type=int, default=60, help="Adam steps of the synthetic classifier")
    parser.add_argument("--profile", default="default", help="the profile whose attacks.ensemble part 4 costs")
    parser.add_argument("--skip", nargs="*", default=[], choices=("pgd", "square", "compare", "ensemble"))
    args = parser.parse_args()

    device = pick_device(args.device)
    torch.manual_seed(0)
    model = VGGClassifier(VGGConfig(width=args.width, init="random")).to(device).eval()
    x = torch.rand(args.batch, 1, args.size, args.size, device=device)
    y = torch.randint(0, 2, (args.batch,), device=device)
    print(
        f"device {device}, VGG11 width {args.width}, batch {args.batch} x 1 x {args.size} x {args.size}, "
        f"K = {args.steps}, {torch.get_num_threads()} threads"
    )
    if "pgd" not in args.skip:
        pgd_against_floor(model, x, y, args, device)
    if "square" not in args.skip:
        square_against_floor(model, x, args, device)
    if "compare" not in args.skip:
        square_against_torchattacks(args, device)
    if "ensemble" not in args.skip:
        ensemble_cost(model, x, args, device)


if __name__ == "__main__":
    main()
