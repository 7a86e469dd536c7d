"""A GAN stage that ends at its epoch limit without its target is reported (issue 11 item 9), from the history."""

from __future__ import annotations

import pandas as pd
from medadv.train.gan import HISTORY_COLUMNS, GanConfig, stage_warnings


def _history(rows: list[tuple[str, str, float, float, bool]]) -> pd.DataFrame:
    full = [
        {
            "direction": d,
            "stage": s,
            "epoch": i,
            "batches": 2,
            "generator_updates": 0,
            "loss_gen1": g,
            "loss_dis": 0.0,
            "dis_real": 0.0,
            "dis_fake": 0.0,
            "margin": m,
            "stop": stop,
            "epoch_seconds": 0.1,
        }
        for i, (d, s, g, m, stop) in enumerate(rows)
    ]
    return pd.DataFrame(full, columns=list(HISTORY_COLUMNS))


def test_only_stages_that_missed_their_target_warn() -> None:
    cfg = GanConfig(identity_epochs=2, warmup_epochs=3, joint_epochs=4)
    history = _history(
        [
            ("remove", "identity", 0.01, 0.0, False),
            ("remove", "identity", 0.001, 0.0, True),  # reached, 2nd epoch
            ("remove", "warmup", 0.001, 0.05, False),
            ("remove", "warmup", 0.001, 0.3, True),
            ("remove", "joint", 0.001, 0.2, False),
            ("remove", "joint", 0.001, 0.15, False),  # ran out
            ("insert", "identity", 0.001, 0.0, True),
            ("insert", "warmup", 0.001, 0.1, False),  # ran out
            ("insert", "joint", 0.001, 0.005, True),
        ]
    )
    warnings = stage_warnings(history, cfg)
    assert len(warnings) == 2
    assert warnings[0].startswith("GAN remove: the joint stage ended at its limit of 4 epochs")
    assert "margin 0.15, expected below stop_margin 0.01" in warnings[0] and "gan.joint_epochs" in warnings[0]
    assert warnings[1].startswith("GAN insert: the warmup stage") and "above warmup_margin 0.2" in warnings[1]
    assert stage_warnings(history[history["stop"] | (history["stage"] == "identity")], cfg) == []
