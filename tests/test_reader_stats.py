"""Tests of medadv.stats.reader (and the response validation of medadv.reader_app.responses) on a tiny two-reader study
whose numbers are worked out by hand in the comments."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from medadv.errors import ConfigError, DataError
from medadv.reader_app.responses import read_responses, validate_responses
from medadv.stats.mrmc import or_hillis
from medadv.stats.reader import (
    accuracy_table,
    agreement_table,
    answer_to_rating,
    clopper_pearson,
    fleiss_kappa,
    has_confidence_ratings,
    mcnemar_exact,
    ratings_from_responses,
    reader_pair_tests,
    reading_times,
    repeated_read_tests,
    session_tests,
    subgroup_accuracies,
)
from scipy import stats

R, F = "real", "fake"
# Answer key. Session 2: six real images; sessions 3 and 5: real and fake alternating, labels 1,1,0,0,1,1,0,0.
TRUTH = {2: [R] * 6, 3: [R, F] * 4, 5: [R, F] * 4}
LABEL = {2: [1, 0, 1, 0, 1, 0], 3: [1, 1, 0, 0] * 2, 5: [1, 1, 0, 0] * 2}
N, U, X = "real", "unsure", "not_real"
ANSWERS = {
    # reader 1:  correct S2 [1,1,0,1,0,1]; S3 [1,1,1,0,0,1,1,0]; S5 [1,1,0,1,1,1,0,1]
    ("1", 2): [N, N, X, N, U, N],
    ("1", 3): [N, X, N, N, X, X, N, U],
    ("1", 5): [N, X, X, X, N, X, U, X],
    # reader 2:  correct S2 all; S3 [1,0,1,1,0,1,1,1]; S5 [1,1,1,1,1,1,0,1]
    ("2", 2): [N] * 6,
    ("2", 3): [N, N, N, X, U, X, N, X],
    ("2", 5): [N, X, N, X, N, X, U, X],
}


def _key() -> pd.DataFrame:
    rows = [
        {"image_id": f"s{s}_{i}", "session": s, "truth": t, "source_label": lab}
        for s in TRUTH
        for i, (t, lab) in enumerate(zip(TRUTH[s], LABEL[s], strict=True))
    ]
    return pd.DataFrame(rows)


def _responses(confidence: bool = False) -> pd.DataFrame:
    rows = []
    for (reader, s), answers in ANSWERS.items():
        for i, a in enumerate(answers):
            secs = 10.0 * (i + 1) if reader == "1" else 12.0
            conf = (i % 5) + 1 if confidence and s != 2 else np.nan
            rows.append(
                {
                    "reader": reader,
                    "session": s,
                    "image_id": f"s{s}_{i}",
                    "answer": a,
                    "confidence": conf,
                    "reading_seconds": secs,
                    "order": i + 1,
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture()
def table() -> pd.DataFrame:
    return validate_responses(_responses(), _key())


def _row(df: pd.DataFrame, **where: object) -> pd.Series:
    mask = np.ones(len(df), dtype=bool)
    for k, v in where.items():
        mask &= (df[k] == v).to_numpy()
    assert mask.sum() == 1, where
    return df[mask].iloc[0]


def test_validate_joins_and_scores(table: pd.DataFrame) -> None:
    assert len(table) == 44
    r1s3 = table[(table["reader"] == "1") & (table["session"] == 3)]
    assert list(r1s3["correct"]) == [True, True, True, False, False, True, True, False]
    assert set(table.columns) >= {"truth", "source_label", "correct", "confidence"}


def test_accuracy_by_hand(table: pd.DataFrame) -> None:
    acc = accuracy_table(table)
    row = _row(acc, reader="1", session=3, truth="real", label="all")  # reads 1,3,5,7: correct 1,1,0,1
    assert (row["n"], row["n_correct"], row["n_unsure"]) == (4, 3, 0)
    assert row["accuracy"] == 0.75
    assert row["ci_high"] == pytest.approx(0.975 ** (1 / 4))  # Clopper-Pearson upper for k = n - 1
    assert row["ci_low"] == pytest.approx(stats.beta.ppf(0.025, 3, 2))
    row = _row(acc, reader="1", session=5, truth="fake", label="all")  # 4 of 4
    assert (row["accuracy"], row["ci_high"]) == (1.0, 1.0)
    assert row["ci_low"] == pytest.approx(0.025 ** (1 / 4))
    row = _row(acc, reader="1", session=3, truth="fake", label="negative")  # reads 4 and 8: wrong, unsure
    assert (row["n"], row["n_correct"], row["n_unsure"], row["ci_low"]) == (2, 0, 1, 0.0)
    assert row["ci_high"] == pytest.approx(1 - 0.025 ** (1 / 2))
    assert _row(acc, reader="1", session=3, truth="all", label="all")["accuracy"] == 5 / 8
    assert _row(acc, reader="1", session=2, truth="real", label="positive")["accuracy"] == 1 / 3  # reads 1,3,5: 1,0,0
    assert acc[(acc["session"] == 2) & (acc["truth"] == "fake")].empty


def test_subgroups_in_reading_order() -> None:
    np.testing.assert_allclose(subgroup_accuracies([1, 1, 0, 1, 0, 1, 1], 2), [2 / 3, 2 / 3])  # 7th read left out
    np.testing.assert_allclose(subgroup_accuracies([1, 0, 0, 0, 1, 1], 3), [0.5, 0.0, 1.0])
    with pytest.raises(DataError, match="sub-groups"):
        subgroup_accuracies([1, 0], 3)


def test_session_tests_by_hand(table: pd.DataFrame) -> None:
    res = session_tests(table, sessions=(2, 3, 5), n_groups=2)
    # Reader 1, real images. S2 [1,1,0 | 1,0,1]: 2/3, 2/3 -> sd 0, acc 4/6. S3 real [1,1 | 0,1]: sd = sqrt(1/8), acc
    # 3/4. S5 real [1,0 | 1,0]: sd 0, acc 1/2. sd_avg = sqrt(1/8)/3; se = sd_avg * sqrt(2/2).
    sd_avg = math.sqrt(1 / 8) / 3
    expected = {(2, 3): 0.75 - 4 / 6, (3, 5): 0.5 - 0.75, (2, 5): 0.5 - 4 / 6}
    for (a, b), diff in expected.items():
        row = _row(res, reader="1", truth="real", label="all", session_a=a, session_b=b)
        assert row["diff"] == pytest.approx(diff)
        assert row["sd_avg"] == pytest.approx(sd_avg)
        assert row["statistic"] == pytest.approx(diff / sd_avg)
        assert row["p_value"] == pytest.approx(stats.norm.sf(abs(diff) / sd_avg))
        assert row["direction"] == ("increase" if diff > 0 else "decrease")
    assert _row(res, reader="1", truth="real", label="all", session_a=3, session_b=5)["p_value"] == pytest.approx(
        0.016947, abs=1e-6
    )
    assert (res.loc[res["sd_avg"] > 0, "note"] == "").all()
    # Reader 1, fake images: only sessions 3 and 5; S3 [1,0 | 1,0] and S5 [1,1 | 1,1] both have sd 0: the accuracies
    # differ (0.5 vs 1) but the spread is zero, so the test is undefined: NaN with the reason, never p = 0.
    fake = res[(res["reader"] == "1") & (res["truth"] == "fake") & (res["label"] == "all")]
    assert list(zip(fake["session_a"], fake["session_b"], strict=True)) == [(3, 5)]
    assert fake["diff"].iloc[0] == pytest.approx(0.5) and fake["sd_avg"].iloc[0] == 0.0
    assert math.isnan(fake["statistic"].iloc[0]) and math.isnan(fake["p_value"].iloc[0])
    assert fake["note"].iloc[0].startswith("zero spread") and "2 sub-group" in fake["note"].iloc[0]
    t_fake = session_tests(table, n_groups=2, distribution="t")
    assert math.isnan(_row(t_fake, reader="1", truth="fake", label="all", session_a=3, session_b=5)["p_value"])
    t = session_tests(table, n_groups=2, distribution="t")
    row = _row(t, reader="1", truth="real", label="all", session_a=3, session_b=5)
    assert row["df"] == 3 and row["p_value"] == pytest.approx(stats.t.sf(0.25 / sd_avg, 3))


def test_session_test_options_are_checked(table: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match="n_groups"):
        session_tests(table, n_groups=1)
    with pytest.raises(ConfigError, match="distribution"):
        session_tests(table, distribution="student")
    with pytest.raises(ConfigError, match="sessions"):
        session_tests(table, sessions=(3,))


def test_mcnemar_by_hand(table: pd.DataFrame) -> None:
    assert mcnemar_exact([1] * 9 + [0], [0] * 9 + [1]) == (9, 1, pytest.approx(22 / 1024))  # 2 * (1 + 10) / 2^10
    assert mcnemar_exact([1, 0], [1, 0]) == (0, 0, 1.0)
    pairs = reader_pair_tests(table)
    # Session 3, all images: reader 1 [1,1,1,0,0,1,1,0], reader 2 [1,0,1,1,0,1,1,1]: 1 vs 2 discordant, p = 1.
    row = _row(pairs, session=3, truth="all")
    assert (row["n"], row["n_both"], row["n_a_only"], row["n_b_only"], row["n_neither"]) == (8, 4, 1, 2, 1)
    assert row["p_value"] == 1.0
    assert repeated_read_tests(table).empty


def test_repeated_reads_of_the_same_images() -> None:
    key = _key()
    key.loc[key["session"] == 5, "image_id"] = key.loc[key["session"] == 3, "image_id"].to_numpy()
    resp = _responses()
    resp.loc[resp["session"] == 5, "image_id"] = resp.loc[resp["session"] == 3, "image_id"].to_numpy()
    res = repeated_read_tests(validate_responses(resp, key))
    row = _row(res, reader="1", session_a=3, session_b=5)
    # S3 [1,1,1,0,0,1,1,0] vs S5 [1,1,0,1,1,1,0,1]: a only reads 3,7; b only reads 4,5,8.
    assert (row["n"], row["n_a_only"], row["n_b_only"]) == (8, 2, 3)
    assert row["p_value"] == pytest.approx(1.0)


def test_fleiss_kappa_by_hand(table: pd.DataFrame) -> None:
    # Session 2: reader 1 [real, real, not_real, real, unsure, real], reader 2 all real. P_bar = 4/6,
    # p_j = (10, 1, 1)/12, P_e = 102/144, kappa = (4/6 - 102/144) / (1 - 102/144) = -1/7.
    agree = agreement_table(table)
    row = _row(agree, session=2, truth="all")
    assert (row["n_images"], row["n_readers"]) == (6, 2)
    assert row["kappa"] == pytest.approx(-1 / 7)
    # Fleiss 1971 worked example: 10 subjects, 14 raters, 5 categories -> kappa 0.210.
    fleiss = np.array(
        [
            [0, 0, 0, 0, 14],
            [0, 2, 6, 4, 2],
            [0, 0, 3, 5, 6],
            [0, 3, 9, 2, 0],
            [2, 2, 8, 1, 1],
            [7, 7, 0, 0, 0],
            [3, 2, 6, 3, 0],
            [2, 5, 3, 2, 2],
            [6, 5, 2, 1, 0],
            [0, 2, 2, 3, 7],
        ]
    )
    assert fleiss_kappa(fleiss) == pytest.approx(0.20993, abs=1e-5)
    assert math.isnan(fleiss_kappa(np.array([[2, 0], [2, 0]])))
    with pytest.raises(DataError, match="same number"):
        fleiss_kappa(np.array([[2, 0], [1, 0]]))


def test_reading_times_by_hand(table: pd.DataFrame) -> None:
    times = reading_times(table)
    row = _row(times, reader="1", session=3)  # 10, 20, ..., 80 s
    assert (row["n_images"], row["total_minutes"], row["mean_seconds"], row["median_seconds"]) == (8, 6.0, 45.0, 45.0)
    assert _row(times, reader="2", session=2)["total_minutes"] == pytest.approx(6 * 12 / 60)


def test_ratings_mapping_and_mrmc() -> None:
    assert [answer_to_rating("real", c) for c in (5, 1)] == [1.0, 5.0]
    assert answer_to_rating("unsure", np.nan) == 6.0
    assert [answer_to_rating("not_real", c) for c in (1, 5)] == [7.0, 11.0]
    with pytest.raises(DataError, match="confidence"):
        answer_to_rating("real", np.nan)
    table = validate_responses(_responses(confidence=True), _key())
    assert not has_confidence_ratings(table)  # session 2 has none
    assert has_confidence_ratings(table, sessions=(3, 5))
    ratings = ratings_from_responses(table, treatments=(3, 5))
    assert len(ratings) == 32 and set(ratings["treatment"]) == {3, 5}
    first = ratings.iloc[0]  # reader 1, session 3, read 1: real with confidence 1 -> 5; a real image
    assert (first["case"], first["truth"], first["rating"]) == ("s3_0", 0, 5.0)
    assert ratings.iloc[1]["rating"] == 8.0  # not_real with confidence 2
    res = or_hillis(ratings)
    assert res.design == "unpaired" and res.cov1 == 0.0
    with pytest.raises(DataError, match="confidence"):
        ratings_from_responses(validate_responses(_responses(), _key()))


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda r: r.drop(columns="order"), "lacks column"),
        (lambda r: r.assign(image_id=r["image_id"].replace("s3_0", "s3_99")), "image id"),
        (lambda r: r.assign(session=np.where(r["image_id"] == "s3_0", 5, r["session"])), "image id"),
        (lambda r: pd.concat([r, r.iloc[[0]]]), "repeated reads"),
        (lambda r: r.drop(index=3), "unanswered"),
        (lambda r: r.assign(answer=r["answer"].where(r.index != 2)), "without an answer"),
        (lambda r: r.assign(answer=r["answer"].replace("unsure", "maybe")), "maybe"),
        (lambda r: r.assign(confidence=7), "confidence"),
        (lambda r: r.assign(reading_seconds=-1.0), "reading_seconds"),
        (
            lambda r: r.assign(reading_seconds=r["reading_seconds"].where(r["reader"] != "2", 5231.0)),
            r"responses of reader 2: median reading time 5231 s an image .*were these milliseconds\?",
        ),
        (lambda r: r.assign(order=1), "reading position"),
    ],
)
def test_bad_responses_raise_data_error(mutate, match: str) -> None:  # noqa: ANN001
    with pytest.raises(DataError, match=match):
        validate_responses(mutate(_responses()), _key())


def test_answers_are_normalised_and_readers_checked() -> None:
    resp = _responses()
    resp["answer"] = resp["answer"].str.replace("_", " ").str.upper()
    assert validate_responses(resp, _key(), readers=["1", "2"])["answer"].isin(["real", "not_real", "unsure"]).all()
    with pytest.raises(DataError, match="unknown reader"):
        validate_responses(_responses(), _key(), readers=["1"])
    with pytest.raises(DataError, match="no responses"):
        validate_responses(_responses(), _key(), readers=["1", "2", "3"])
    with pytest.raises(DataError, match="unanswered"):
        validate_responses(
            _responses()[lambda r: ~((r["reader"] == "2") & (r["session"] == 5))], _key(), sessions=[2, 3, 5]
        )


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda k: k.assign(truth="genuine"), "truth"),
        (lambda k: k.assign(source_label=2), "source_label"),
        (lambda k: pd.concat([k, k.iloc[[0]]]), "more than once"),
        (lambda k: k.drop(columns="source_label"), "lacks column"),
    ],
)
def test_bad_key_raises_data_error(mutate, match: str) -> None:  # noqa: ANN001
    with pytest.raises(DataError, match=match):
        validate_responses(_responses(), mutate(_key()))


def test_read_responses_names_the_file(tmp_path: Path) -> None:
    resp = _responses()
    resp[resp["reader"] == "1"].to_csv(tmp_path / "r1.csv", index=False)
    resp[resp["reader"] == "2"].drop(columns="order").to_csv(tmp_path / "r2.csv", index=False)
    assert len(read_responses([tmp_path / "r1.csv"])) == 22
    with pytest.raises(DataError, match="r2.csv"):
        read_responses(sorted(tmp_path.glob("*.csv")))
    with pytest.raises(DataError, match="no responses files"):
        read_responses([])


def test_clopper_pearson_edges() -> None:
    assert clopper_pearson(0, 5)[0] == 0.0
    assert clopper_pearson(5, 5)[1] == 1.0
    assert all(math.isnan(v) for v in clopper_pearson(0, 0))
    with pytest.raises(ConfigError):
        clopper_pearson(1, 2, level=0)


def test_reading_times_accept_raw_view_only_sessions() -> None:
    raw = pd.DataFrame({"reader": ["1", "1", "2"], "session": [4, 4, 4], "reading_seconds": [30.0, 90.0, 60.0]})
    times = reading_times(raw)
    assert list(times["total_minutes"]) == [2.0, 1.0]
    with pytest.raises(DataError, match="reading_seconds"):
        reading_times(raw.assign(reading_seconds=[1.0, np.nan, 2.0]))


def _write(path: Path, table: pd.DataFrame, encoding: str = "utf-8", sep: str = ",", tail: str = "") -> Path:
    path.write_bytes((table.to_csv(index=False, sep=sep) + tail).encode(encoding))
    return path


def test_reader_ids_stay_text_from_file_to_table(tmp_path: Path) -> None:
    """A reader 007 was listed as reader 7; NA raised a TypeError; 1e3, 1 and 01 were read as numbers."""
    ids = {"1": "007", "2": "NA"}
    resp = _responses().assign(reader=lambda r: r["reader"].map(ids))
    paths = [_write(tmp_path / f"r{k}.csv", resp[resp["reader"] == v]) for k, v in ids.items()]
    table = validate_responses(read_responses(paths), _key())
    assert sorted(set(table["reader"])) == ["007", "NA"]
    assert set(accuracy_table(table)["reader"]) == {"007", "NA"}
    for others in (("1e3", "01"), ("1", "01")):
        resp = _responses().assign(reader=lambda r, o=others: r["reader"].map({"1": o[0], "2": o[1]}))
        back = read_responses([_write(tmp_path / "both.csv", resp)])
        assert sorted(set(validate_responses(back, _key())["reader"])) == sorted(others)


@pytest.mark.parametrize("bad", ["-3", "nan", "86400000", "soon"])
def test_bad_reading_times_name_the_file_reader_and_value(tmp_path: Path, bad: str) -> None:
    resp = _responses().astype({"reading_seconds": object})
    resp.loc[(resp["reader"] == "2") & (resp["image_id"] == "s3_4"), "reading_seconds"] = bad
    path = _write(tmp_path / "r2.csv", resp)
    with pytest.raises(
        DataError,
        match=rf"'reading_seconds' holds '?{bad}'? \(reader '2', session 3, image 's3_4', in "
        r"r2\.csv; 1 bad value\(s\)\); expected the seconds spent on each image, from 0 "
        r"to 86400 \(a day\)",
    ):
        validate_responses(read_responses([path]), _key())


def test_utf16_and_trailing_empty_rows_read_like_utf8(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    resp = _responses()
    plain = read_responses([_write(tmp_path / "a.csv", resp)])
    for name, encoding, sep in (("b.csv", "utf-16", ","), ("c.csv", "utf-16", "\t"), ("d.csv", "utf-8-sig", ",")):
        back = read_responses([_write(tmp_path / name, resp, encoding, sep)])
        pd.testing.assert_frame_equal(back.drop(columns="source_file"), plain.drop(columns="source_file"))
    with caplog.at_level(logging.INFO, logger="medadv.reader_app.responses"):
        padded = read_responses([_write(tmp_path / "e.csv", resp, tail=",,,,,,\n,,,,,,\n")])
    assert len(padded) == len(resp) and "e.csv: 2 row(s) with every cell empty left out" in caplog.text
    assert len(validate_responses(padded, _key())) == len(resp)
    latin = tmp_path / "f.csv"
    latin.write_bytes(resp.assign(reader="Jos\u00e9").to_csv(index=False).encode("latin-1"))
    with pytest.raises(DataError, match=r"f\.csv is not UTF-8 text .*save it as 'CSV UTF-8'"):
        read_responses([latin])
