"""Cost of a K-step PGD attack against its floor: K forward-and-backward passes of the same model and batch.

Any K-step gradient attack needs at least K forward passes and K backward passes to the input; what PGD adds is the
projection, the step and the bookkeeping of the best iterate (plus one forward pass per restart for the last
iterate). This script times both on paper 001's classifier and prints their ratio and the attack's images per second.
Target: a ratio within 1.05.

    python benchmarks/attacks.py                       # CPU, the default profile's classifier, image size and K
    python benchmarks/attacks.py --device cuda --size 256 --width 1.0 --batch 64
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from medadv.attacks.gradient import pgd
from medadv.models.inference import eval_mode
from medadv.config import pick_device
from medadv.models.classifier import VGGClassifier, VGGConfig


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", type=int, default=96, help="image side in pixels")
    parser.add_argument("--width", type=float, default=0.125, help="VGG11 channel multiplier")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20, help="K, the PGD steps")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    device = pick_device(args.device)
    torch.manual_seed(0)
    model = VGGClassifier(VGGConfig(width=args.width, imagenet=False)).to(device).eval()
    x = torch.rand(args.batch, 1, args.size, args.size, device=device)
    y = torch.randint(0, 2, (args.batch,), device=device)
    eps = 2 / 255

    def floor() -> None:
        with eval_mode(model):
            for _ in range(args.steps):
                xr = x.detach().requires_grad_(True)
                torch.autograd.grad(F.cross_entropy(model(xr), y), xr)

    def attack() -> None:
        pgd(model, x, y, eps, 2.5 * eps / args.steps, args.steps, generator=torch.Generator().manual_seed(0))

    t_floor, t_attack = _timed_pair(floor, attack, device, args.repeats)
    print(f"device {device}, VGG11 width {args.width}, batch {args.batch} x 1 x {args.size} x {args.size}, K = {args.steps}")
    print(f"K x (forward + backward): {t_floor * 1e3:9.1f} ms")
    print(f"PGD, {args.steps} steps:        {t_attack * 1e3:9.1f} ms")
    print(f"ratio PGD / floor:        {t_attack / t_floor:9.3f}   (target <= 1.05)")
    print(f"PGD images per second:    {args.batch / t_attack:9.1f}")


if __name__ == "__main__":
    main()
