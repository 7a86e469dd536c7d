"""The simulated reader panel: its documented skills are what it does, it is deterministic, and it writes exactly
the reader app's export format, which the analysis of notebook 05 accepts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from medadv.errors import ConfigError, DataError
from medadv.reader_app import RESPONSE_COLUMNS, ReaderSkill, simulate_panel, write_responses
from medadv.reader_app.analysis import analyse_responses, load_responses, response_files
from medadv.reader_app.simulate import simulate_reader

SKILL = ReaderSkill(
    reader="sim-1",
    real_accuracy=0.8,
    fake_accuracy=0.4,
    unsure_rate=0.1,
    education_real_delta=-0.2,
    education_fake_delta=0.3,
    confidence_step=0.5,
    median_seconds=10.0,
    seconds_sigma=0.3,
    education_time_factor=1.5,
)


def answer_key(n: int) -> pd.DataFrame:
    """A key of 2n real images in Session 2, and n real + n fake in Sessions 3 and 5 (plus small viewing sessions)."""
    rows = []
    for session, truths in (
        (1, ["real"] * 4),
        (2, ["real"] * 2 * n),
        (3, ["real", "fake"] * n),
        (4, ["triplet"] * 3),
        (5, ["real", "fake"] * n),
    ):
        for order, truth in enumerate(truths, start=1):
            rows.append(
                {
                    "session": session,
                    "order": order,
                    "image_id": f"s{session}i{order}",
                    "truth": truth,
                    "split": "test",
                    "source_label": order % 2,
                    "shown_label": order % 2,
                }
            )
    return pd.DataFrame(rows)


def test_documented_skills_are_reproduced() -> None:
    out = simulate_reader(answer_key(20000), SKILL, seed=3, reader_number=1).merge(
        answer_key(20000), on=["session", "image_id", "order"]
    )
    for session, real_acc, fake_acc in ((3, 0.8, 0.4), (5, 0.6, 0.7)):
        s = out[out["session"] == session]
        real, fake = s[s["truth"] == "real"], s[s["truth"] == "fake"]
        assert (real["answer"] == "real").mean() == pytest.approx(real_acc, abs=0.012)
        assert (real["answer"] == "unsure").mean() == pytest.approx(0.1, abs=0.008)
        assert (fake["answer"] == "not_real").mean() == pytest.approx(fake_acc, abs=0.012)
    s2 = out[out["session"] == 2]
    assert (s2["answer"] == "real").mean() == pytest.approx(0.8, abs=0.012)
    # confidence: 1-5 with every decided answer, none with unsure; correct answers are more confident than wrong ones
    s3 = out[out["session"] == 3]
    decided = s3[s3["answer"] != "unsure"]
    assert decided["confidence"].notna().all() and s3.loc[s3["answer"] == "unsure", "confidence"].isna().all()
    assert set(decided["confidence"].astype(int)) == {1, 2, 3, 4, 5}
    right = decided["answer"] == decided["truth"].map({"real": "real", "fake": "not_real"})
    assert decided.loc[right, "confidence"].mean() > decided.loc[~right, "confidence"].mean() + 0.3
    # reading times: log-normal with the given median; Session 5 slower by the education factor
    assert out.loc[out["session"] == 3, "reading_seconds"].median() == pytest.approx(10.0, rel=0.02)
    assert out.loc[out["session"] == 5, "reading_seconds"].median() == pytest.approx(15.0, rel=0.02)
    assert (out["reading_seconds"] > 0).all()
    assert set(out.loc[out["session"].isin([1, 4]), "answer"]) == {"seen"}


def test_panel_is_deterministic_and_readers_are_independent() -> None:
    key = answer_key(30)
    other = ReaderSkill(reader="sim-2", real_accuracy=0.7, fake_accuracy=0.6)
    a = simulate_panel(key, [SKILL, other], seed=5)
    assert a.equals(simulate_panel(key, [SKILL, other], seed=5))
    assert not a.equals(simulate_panel(key, [SKILL, other], seed=6))
    alone = simulate_panel(key, [SKILL], seed=5)
    assert a[a["reader"] == "sim-1"].reset_index(drop=True).equals(alone)
    assert list(a.columns) == list(RESPONSE_COLUMNS)
    with pytest.raises(ConfigError, match="empty"):
        simulate_panel(key, [], seed=5)
    with pytest.raises(DataError, match="truth values"):
        simulate_panel(key.assign(truth="maybe"), [SKILL], seed=5)


def test_written_files_match_the_app_export_and_are_analysed(tmp_path: Path) -> None:
    key = answer_key(12)
    panel = [
        SKILL,
        ReaderSkill(reader="sim-2", real_accuracy=0.7, fake_accuracy=0.6),
        ReaderSkill(reader="sim-3", real_accuracy=0.9, fake_accuracy=0.3),
    ]
    responses = simulate_panel(key, panel, seed=2)
    (tmp_path / "responses_session9_old.csv").write_text("stale")
    paths = write_responses(responses, tmp_path)
    assert sorted(p.name for p in paths) == sorted(p.name for p in tmp_path.glob("*.csv"))
    assert len(paths) == 3 * 5 and paths[0].name == "responses_session1_sim-1.csv"
    text = (tmp_path / "responses_session3_sim-2.csv").read_text()
    lines = text.splitlines()
    assert lines[0] == "reader,session,image_id,answer,confidence,reading_seconds,order"
    first = lines[1].split(",")
    assert first[0] == "sim-2" and first[1] == "3" and first[6] == "1" and len(first[5].split(".")[1]) == 3
    assert any(",unsure,," in line for line in lines) or "unsure" not in text
    back = load_responses(tmp_path)
    assert len(back) == len(responses)
    results = analyse_responses(back, key, n_subgroups=4, simulated=True)
    tables = results.tables()
    assert set(tables) == {"reader_accuracy", "reader_session_tests", "reader_agreement", "reader_times", "mrmc"}
    assert all((t["responses"] == "simulated").all() and t.columns[0] == "responses" for t in tables.values())
    acc = results.accuracy.query("reader == 'sim-1' and session == 3 and truth == 'real' and label == 'all'")
    reads = back[
        (back["reader"] == "sim-1")
        & (back["session"] == 3)
        & back["image_id"].isin(key.loc[key["truth"] == "real", "image_id"])
    ]
    assert acc["accuracy"].item() == pytest.approx((reads["answer"] == "real").mean())
    assert results.times.groupby("reader")["session"].apply(list).tolist() == [[1, 2, 3, 4, 5]] * 3
    summary = results.summary()
    assert summary["simulated"] is True and summary["n_readers"] == 3 and "mrmc_p_value" in summary
    no_conf = simulate_panel(key, panel, seed=2, ask_confidence=False)
    assert no_conf["confidence"].isna().all()
    assert analyse_responses(no_conf, key, n_subgroups=4, simulated=True).mrmc is None


def test_analysis_rejects_foreign_responses(tmp_path: Path) -> None:
    key = answer_key(6)
    responses = simulate_panel(key, [SKILL, ReaderSkill(reader="sim-2", real_accuracy=0.7, fake_accuracy=0.6)], seed=1)
    with pytest.raises(DataError, match="session numbers"):
        analyse_responses(responses.assign(session=7), key, 3, simulated=False)
    view = responses["session"] == 1
    with pytest.raises(DataError, match="viewing sessions"):
        analyse_responses(responses.assign(answer=np.where(view, "real", responses["answer"])), key, 3, simulated=False)
    with pytest.raises(DataError, match="does not hold"):
        analyse_responses(responses.assign(image_id=np.where(view, "elsewhere", responses["image_id"])), key, 3, False)
    with pytest.raises(DataError, match="unanswered"):
        analyse_responses(responses.drop(index=responses.index[responses["session"] == 5][0]), key, 3, False)
    with pytest.raises(DataError, match="no \\*.csv"):
        response_files(tmp_path)
    with pytest.raises(DataError, match="no such folder"):
        response_files(tmp_path / "absent")


@pytest.mark.parametrize("session", [1, 4, 3])
def test_a_repeated_read_is_refused_in_every_session(session: int) -> None:
    key = answer_key(6)
    responses = simulate_panel(key, [SKILL, ReaderSkill(reader="sim-2", real_accuracy=0.7, fake_accuracy=0.6)], seed=1)
    twice = pd.concat([responses, responses[responses["session"] == session].iloc[[0]]], ignore_index=True)
    with pytest.raises(DataError, match=rf"2 rows for repeated reads, e.g. {{'reader': 'sim-1', 'session': {session}"):
        analyse_responses(twice, key, 3, simulated=False)


@pytest.mark.parametrize("bad", ["../../x", "R,1", "=cmd|' /C calc'!A0", ""])
def test_reader_ids_must_follow_the_apps_rule(tmp_path: Path, bad: str) -> None:
    key = answer_key(6)
    responses = simulate_panel(key, [SKILL, ReaderSkill(reader="sim-2", real_accuracy=0.7, fake_accuracy=0.6)], seed=1)
    write_responses(responses, tmp_path)
    back = load_responses(tmp_path)
    back.loc[back["reader"] == "sim-2", "reader"] = bad
    with pytest.raises(
        DataError,
        match=r"\(in \['responses_session1_sim-2\.csv'.*break the reader app's rule: 1-40 letters, digits, '_' and '-'",
    ):
        analyse_responses(back, key, 3, simulated=False)


def test_reader_ids_differing_only_in_case_or_spacing_are_named() -> None:
    key = answer_key(6)
    responses = simulate_panel(key, [SKILL, ReaderSkill(reader="r1", real_accuracy=0.7, fake_accuracy=0.6)], seed=1)
    responses.loc[(responses["reader"] == "r1") & (responses["session"] == 5), "reader"] = "R1 "
    with pytest.raises(DataError, match=r"reader ids \['R1 ', 'r1'\] differ only in case or spacing"):
        analyse_responses(responses, key, 3, simulated=False)


def test_empty_and_upper_case_response_files(tmp_path: Path) -> None:
    key = answer_key(6)
    responses = simulate_panel(key, [SKILL, ReaderSkill(reader="sim-2", real_accuracy=0.7, fake_accuracy=0.6)], seed=1)
    paths = write_responses(responses, tmp_path)
    paths[0].rename(paths[0].with_suffix(".CSV"))  # an export saved with an upper-case suffix is read too
    assert len(load_responses(tmp_path)) == len(responses)
    (tmp_path / "reader9.csv").write_bytes(b"")
    with pytest.raises(DataError, match=r"responses file .*reader9\.csv is empty"):
        load_responses(tmp_path)


def test_the_app_the_panel_the_database_and_the_analysis_share_one_column_list(tmp_path: Path) -> None:
    from medadv.reader_app import db, simulate
    from medadv.reader_app import responses as reader
    from medadv.reader_app.page import render_page

    assert RESPONSE_COLUMNS is reader.RESPONSE_COLUMNS is simulate.RESPONSE_COLUMNS is db.RESPONSE_COLUMNS
    assert reader.REQUIRED_RESPONSE_COLUMNS == ("reader", "session", "image_id", "answer", "reading_seconds", "order")
    page = render_page(
        {
            "package_id": "p",
            "session": 2,
            "mode": "read",
            "modality": "mammography",
            "ask_confidence": True,
            "items": [{"image_id": "a", "file": "images/0001.png"}],
        }
    )
    blob = re.search(r'<script type="application/json" id="session-data">(.*?)</script>', page, re.S).group(1)
    assert json.loads(blob)["columns"] == list(RESPONSE_COLUMNS)  # the header app.js writes
    app_js = (Path(simulate.__file__).parent / "app.js").read_text(encoding="utf-8")
    assert "var COLUMNS = DATA.columns;" in app_js and '"reading_seconds", "order"' not in app_js  # no list of its own
