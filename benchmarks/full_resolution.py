"""Paper 001 at full resolution: one classifier training step, one joint GAN step and a 20-step PGD, timed.

At 1728 x 1408 (the paper's mammograms) and the paper's batch of four (two positives, two negatives), with the
gradient penalty at the image (eq. 3; it back-propagates twice), this script times

* one training step of paper 001's classifier (focal loss + image gradient penalty, Adam step),
* one joint GAN step (Dnet on Eq. 4 + the image penalty of Eq. 6, then Gnet on Eq. 8),
* a 20-step L-inf PGD on a batch,

and prints images per second and peak memory of each. On the CPU each is run once (``--steps 1``); on a GPU it runs
in bfloat16 autocast (mixed precision) with one warm-up step first, and ``--steps`` sizes the run (the defaults
finish within minutes on one large GPU). Peak memory: ``torch.cuda.max_memory_allocated`` on CUDA, the process's
peak resident set (``resource.getrusage``) on the CPU.

    python benchmarks/full_resolution.py                         # CPU, full width, one step of each
    python benchmarks/full_resolution.py --device cuda --steps 5
    python benchmarks/full_resolution.py --size 384 320 --width 0.125   # a quick check of the script itself
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Callable

import torch
from medadv.attacks.gradient import pgd
from medadv.config import pick_device
from medadv.models.classifier import VGGClassifier, VGGConfig
from medadv.models.gan_networks import Discriminator, Gnet
from medadv.train.gan import discriminator_loss, generator_loss, gradient_penalty
from medadv.train.losses import focal_gp_loss


def _peak_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _timed(name: str, fn: Callable[[], None], images: int, steps: int, device: torch.device) -> None:
    if device.type == "cuda":
        fn()  # warm-up (cuDNN autotuning, allocator)
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = (time.perf_counter() - start) / steps
    print(f"{name:<28} {seconds:9.2f} s/step {images / seconds:9.3f} images/s   peak {_peak_mib(device):9.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--size", type=int, nargs=2, default=[1728, 1408], metavar=("H", "W"))
    parser.add_argument("--width", type=float, default=1.0, help="channel multiplier (1.0 = the paper's)")
    parser.add_argument("--steps", type=int, default=0, help="timed steps of each (0: 1 on the CPU, 5 on a GPU)")
    parser.add_argument("--pgd-batch", type=int, default=4)
    parser.add_argument("--pgd-steps", type=int, default=20, help="PGD steps (20; fewer for a quick CPU figure)")
    args = parser.parse_args()
    device = pick_device(args.device)
    steps = args.steps or (5 if device.type == "cuda" else 1)
    amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    torch.manual_seed(0)
    h, w = args.size
    model = VGGClassifier(VGGConfig(width=args.width, init="random")).to(device)
    x = torch.rand(4, 1, h, w, device=device)
    y = torch.tensor([1, 1, 0, 0], device=device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.5, 0.9))

    def classifier_step() -> None:
        opt.zero_grad(set_to_none=True)
        with amp:
            loss, _ = focal_gp_loss(model, x, y, gp_at="image")
        loss.backward()
        opt.step()

    disc = Discriminator(model).to(device)
    gen = Gnet(width=32, depth=5).to(device)
    d_opt = torch.optim.Adam(disc.parameters(), lr=1e-4, betas=(0.5, 0.9))
    g_opt = torch.optim.Adam(gen.parameters(), lr=1e-5, betas=(0.5, 0.9))

    def gan_step() -> None:  # removal: real negatives x[2:], positives x[:2] to edit
        d_opt.zero_grad(set_to_none=True)
        with amp:
            with torch.no_grad():
                fake = gen(x[:2])
            penalty, s_real = gradient_penalty(disc, x[2:], gp_at="image")
            loss_d = discriminator_loss(s_real, disc(fake), penalty)
        loss_d.backward()
        d_opt.step()
        g_opt.zero_grad(set_to_none=True)
        disc.requires_grad_(False)
        with amp:
            fake = gen(x[:2])
            loss_g = generator_loss(disc(fake), fake, x[:2])
        loss_g.backward()
        disc.requires_grad_(True)
        g_opt.step()

    xp = torch.rand(args.pgd_batch, 1, h, w, device=device)
    yp = torch.arange(args.pgd_batch, device=device) % 2

    def attack() -> None:
        with amp:
            pgd(model, xp, yp, eps=2 / 255, alpha=0.5 / 255, steps=args.pgd_steps)

    print(
        f"paper 001 at {h} x {w}, width {args.width}, {device} "
        f"({'bfloat16 autocast' if device.type == 'cuda' else 'float32'}), "
        f"{torch.get_num_threads()} threads, {steps} timed step(s)"
    )
    _timed("classifier step (GP image)", classifier_step, 4, steps, device)
    _timed("joint GAN step", gan_step, 4, steps, device)
    _timed(f"PGD-{args.pgd_steps}", attack, args.pgd_batch, steps, device)


if __name__ == "__main__":
    main()
