"""Seconds per attribution method and per Grad-CAM manipulation run, for the default profile's networks and sizes.

Notebook 04's budget on the default profile is 3 minutes on 2 CPU cores; its cost is 4 models x 6 methods of
:func:`medadv.explain.attribute` plus the manipulation runs. This prints the seconds of each on random-weight networks
of the default profile's architecture (VGG at 1/8 width, ResNet-18 multi-task), so that the profile's ``explain``
section (images, integrated-gradients steps, occlusion stride, attack steps) can be sized without a run folder.

Run: ``OMP_NUM_THREADS=2 python benchmarks/explain.py [--images 36] [--size 96] [--ig-steps 16] [--stride 8]
[--attack-steps 10]``.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch
from medadv.explain.attribute import METHODS, attribute
from medadv.explain.manipulation import manipulate_gradcam, topk_region
from medadv.models.classifier import VGGClassifier, VGGConfig
from medadv.models.multitask import MultiTaskConfig, MultiTaskResNet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=36)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--ig-steps", type=int, default=16)
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--stride", type=int, default=8)
    parser.add_argument("--attack-steps", type=int, default=10)
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.rand(args.images, 1, args.size, args.size)
    models = {
        "vgg (width 1/8)": VGGClassifier(VGGConfig(width=0.125, init="random")).eval(),
        "multitask (resnet18)": MultiTaskResNet(
            MultiTaskConfig(encoder="resnet18", decoder_width=32, imagenet=False)
        ).eval(),
    }
    rows = []
    for name, model in models.items():
        for method in METHODS:
            t0 = time.perf_counter()
            attribute(
                model,
                x,
                method,
                target=1,
                batch_size=64,
                ig_steps=args.ig_steps,
                occlusion_window=args.window,
                occlusion_stride=args.stride,
            )
            rows.append({"model": name, "task": method, "seconds": time.perf_counter() - t0})
        region = topk_region(attribute(model, x, "gradcam", target=1), 0.05)
        t0 = time.perf_counter()
        manipulate_gradcam(model, x, region, eps=8 / 255, steps=args.attack_steps, batch_size=64)
        rows.append(
            {"model": name, "task": f"manipulation ({args.attack_steps} steps)", "seconds": time.perf_counter() - t0}
        )
    table = pd.DataFrame(rows)
    print(f"{args.images} images of {args.size} x {args.size}, {torch.get_num_threads()} threads")
    print(table.pivot(index="task", columns="model", values="seconds").round(2).to_string())
    print(
        f"notebook 04 estimate (3 VGG + 1 multitask, 2 budgets x 2 variants per attacked model): "
        f"{_estimate(table):.0f} s"
    )


def _estimate(table: pd.DataFrame) -> float:
    vgg = table[table["model"].str.startswith("vgg")].set_index("task")["seconds"]
    mt = table[table["model"].str.startswith("multi")].set_index("task")["seconds"]
    attack = [t for t in vgg.index if t.startswith("manipulation")][0]
    methods = list(METHODS)
    return float(3 * vgg[methods].sum() + mt[methods].sum() + 4 * (vgg[attack] + mt[attack]))


if __name__ == "__main__":
    main()
