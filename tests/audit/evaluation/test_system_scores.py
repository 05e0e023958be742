"""A system's own scores: score files read line by line with named errors, counted exactly as facetrail counts.

- every problem of a score or candidate file is refused with its line;
- counts of a score file (ties included) equal a brute-force loop applying each row's
  reported threshold to the file's numbers, read in float64 and in float32;
- a score file written from facetrail's own exact scores gives exactly the engine's rows;
- candidate lists give rank-1, FNIR and FPIR equal to hand counts.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from audit.evaluation.candidates import candidate_rates, read_candidates
from audit.evaluation.config import EvaluationConfig, ScoreConvention, parse_threshold
from audit.evaluation.cutoffs import Precision
from audit.evaluation.datasets import load_label_manifest
from audit.evaluation.listed import evaluate_listed, listed_pairs
from audit.evaluation.metrics import float32_dot_error, quantisation_error, quantize
from audit.evaluation.scorefiles import ScoreFileError, detect_format, read_pair_scores
from audit.evaluation.verification import evaluate_embeddings

MANIFEST = "image,person,sex\na.jpg,p1,F\nb.jpg,p1,F\nc.jpg,p2,M\nd.jpg,p3,M\ne.jpg,p3,M\n"


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    (tmp_path / "m.csv").write_text(MANIFEST)
    return tmp_path / "m.csv"


def read(tmp_path: Path, manifest: Path, text: str, name: str = "s.csv", **kw):
    (tmp_path / name).write_text(text)
    ds = load_label_manifest(manifest, "person")
    return read_pair_scores(tmp_path / name, ds.table["image"].tolist(), ds.subjects, **kw)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("image_a,image_b,score\na.jpg,b.jpg,90\na.jpg,zz.jpg,3\n", "line 3: image_b 'zz.jpg' is not an image of the manifest"),
        ("image_a,image_b,score\na.jpg,b.jpg,90\n\nc.jpg,d.jpg,abc\n", "line 4: score 'abc' is not a number"),
        ("image_a,image_b,score\na.jpg,b.jpg,nan\n", "line 2: score nan is not a finite number"),
        ("image_a,image_b,score\na.jpg,b.jpg,\n", "line 2: no score"),
        ("image_a,image_b,score\na.jpg,b.jpg,1\nc.jpg,d.jpg,2\nb.jpg,a.jpg,3\n",
         "line 4: duplicate pair: the same two sides as line 2"),
        ("image_a,image_b,score\nc.jpg,c.jpg,1\n", "line 2: a pair of one image with itself ('c.jpg')"),
        ("image_a,image_b,score\na.jpg,b.jpg\n", "line 2: expected 3 comma-separated fields"),
        ("left,right,value\na.jpg,b.jpg,1\n", "line 1: unknown score file format"),
        ("image_a,image_b,score\n", "no pairs"),
        ("# bob\np1 p1 b.jpg 0.9\np2 p9 d.jpg 0.1\n", "line 3: real_id 'p9' is not a subject of the manifest"),
        ("p1 p1 b.jpg 0.9\np2 p2 d.jpg 0.1\n", "line 2: real_id 'p2' is not the subject of test_label 'd.jpg'"),
        ("p1 a.jpg p1 b.jpg 0.9\np2 a.jpg p2 c.jpg 0.1\n", "line 2: claimed_id 'p2' is not the subject of model_label"),
        ("p1 a.jpg p1 b.jpg 0.9\np1 a.jpg p2 c.jpg 0.1 extra\n", "line 2: expected 5 whitespace-separated fields"),
    ],
)
def test_every_problem_is_refused_with_its_line(tmp_path, manifest, text, problem):
    with pytest.raises(ScoreFileError, match="s.csv " + problem.replace("(", r"\(").replace(")", r"\)")
                       if problem.startswith("line") else problem):
        read(tmp_path, manifest, text, block_bytes=24)  # tiny blocks: line numbers carry across blocks


def test_the_three_formats_read_the_same_pairs(tmp_path, manifest):
    csv_text = "image_a,image_b,score\r\na.jpg,b.jpg,0.9\r\n\"a.jpg\",c.jpg,0.25\r\nd.jpg,e.jpg,0.8\r\n"
    four = "# claimed real test score\np1 p1 b.jpg 0.9\n\np1\tp2  c.jpg 0.25\np3 p3 e.jpg 0.8\n"
    five = "p1 a.jpg p1 b.jpg 0.9\np1 a.jpg p2 c.jpg 0.25\np3 d.jpg p3 e.jpg 0.8\n"
    got = {fmt: read(tmp_path, manifest, text, name=f"{fmt}.txt", block_bytes=16)
           for fmt, text in (("csv", csv_text), ("4-column", four), ("5-column", five))}
    for fmt, f in got.items():
        assert f.format == fmt == detect_format(f.path)
        np.testing.assert_array_equal(f.score, [0.9, 0.25, 0.8])
        np.testing.assert_array_equal(f.side_b, [1, 2, 4])
    np.testing.assert_array_equal(got["csv"].line, [2, 3, 4])
    np.testing.assert_array_equal(got["4-column"].line, [2, 4, 5])
    # a 4-column file's first side is the enrolled identity, not an image
    assert got["4-column"].side_a.tolist() == [5 + 0, 5 + 0, 5 + 2] and got["5-column"].side_a.tolist() == [0, 0, 3]


def scores_table(n_subjects: int = 40, per: int = 3, seed: int = 0, decimals: int = 1):
    """Every pair of a synthetic set with similarity scores 0-100 rounded to ``decimals`` (many ties)."""
    rng = np.random.default_rng(seed)
    subj = np.repeat(np.arange(n_subjects), per)
    x = rng.standard_normal((n_subjects, 8))[subj] + 0.9 * rng.standard_normal((subj.size, 8))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    i, j = np.triu_indices(subj.size, 1)
    score = np.round(np.clip(100 * np.einsum("ij,ij->i", x[i], x[j]), 0, 100), decimals)
    sex = np.where(subj % 3 == 0, "F", "M")
    return subj, sex, i, j, score


def write_scores(tmp_path: Path, subj, sex, i, j, score, fmt: str = "{:.1f}") -> tuple[Path, Path]:
    names = [f"img/{k:03d}.jpg" for k in range(subj.size)]
    rows = ["image,person,sex"] + [f"{n},s{s:02d},{x}" for n, s, x in zip(names, subj, sex, strict=True)]
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    lines = ["image_a,image_b,score"] + [f"{names[a]},{names[b]},{fmt.format(v)}" for a, b, v in zip(i, j, score,
                                                                                                 strict=True)]
    (tmp_path / "scores.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "m.csv", tmp_path / "scores.csv"


def brute(row, score, same, sex_i, sex_j, as_type) -> dict[str, int]:
    t = as_type(row["threshold"])
    values = score.astype(as_type)
    if row["pairing"] == "all":
        member = np.ones(score.size, dtype=bool)
    elif row["pairing"] == "within":
        g = row["group"]["sex"]
        member = (sex_i == g) & (sex_j == g)
    else:
        a, b = row["group"]["sex"], row["other_group"]["sex"]
        member = ((sex_i == a) & (sex_j == b)) | ((sex_i == b) & (sex_j == a))
    out = {"genuine_pairs": 0, "false_non_matches": 0, "impostor_pairs": 0, "false_matches": 0}
    for k in np.flatnonzero(member):
        match = bool(values[k] >= t)  # similarity scores: match iff score >= threshold
        if same[k]:
            out["genuine_pairs"] += 1
            out["false_non_matches"] += int(not match)
        else:
            out["impostor_pairs"] += 1
            out["false_matches"] += int(match)
    return out


def test_score_file_counts_equal_a_brute_force_loop_in_float64_and_float32(tmp_path):
    subj, sex, i, j, score = scores_table()
    m, path = write_scores(tmp_path, subj, sex, i, j, score)
    ds = load_label_manifest(m, "person")
    pf = read_pair_scores(path, ds.table["image"].tolist(), ds.subjects)
    pairs = listed_pairs(pf, ds, ["sex"], ScoreConvention("similarity"))
    cfg = EvaluationConfig(by=(("sex",),), thresholds=tuple(parse_threshold(t) for t in (
        "fmr=0.01", "fmr=0.001", "score=80", "score=92.3")), include_default=False, bootstrap=0)
    report = evaluate_listed(pairs, cfg)
    same = subj[i] == subj[j]
    assert {r["threshold_name"] for r in report.rates} == {"fmr=0.01", "fmr=0.001", "score=80", "score=92.3"}
    for row in report.rates:
        counts = {k: row[k] for k in ("genuine_pairs", "false_non_matches", "impostor_pairs", "false_matches")}
        assert brute(row, score, same, sex[i], sex[j], np.float64) == counts, row["threshold_name"]
        assert row["reproducible"] is True
        assert brute(row, score, same, sex[i], sex[j], np.float32) == counts, row["threshold_name"]
    for cal in report.calibration_rows:  # strictly between two of the file's scores: never on a tie
        assert cal["nearest_non_match"] < cal["threshold"] < cal["nearest_match"]
        assert cal["threshold"] not in set(score.tolist())
        assert cal["false_matches"] <= math.floor(cal["target_fmr"] * cal["impostor_pairs"])
    # a threshold on a tied score counts every tied pair as a match (score >= threshold)
    tied = next(r for r in report.rates if r["threshold_name"] == "score=80" and r["pairing"] == "all")
    assert tied["false_matches"] == int(np.count_nonzero(~same & (score >= 80.0)))


def test_a_score_file_of_facetrails_own_scores_gives_the_engines_rows(tmp_path):
    rng = np.random.default_rng(3)
    subj = np.repeat(np.arange(30), 3)
    x = rng.standard_normal((30, 12))[subj] + 0.8 * rng.standard_normal((90, 12))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    sex, race = np.where(subj % 2, "F", "M"), np.array(["a", "b", "c"])[subj % 3]
    people = [f"s{s:02d}" for s in subj]
    cfg = dict(by=(("sex",), ("race",), ("sex", "race")), include_default=False, bootstrap=50, min_impostor_pairs=10,
               min_subjects=2, min_genuine_pairs=2)
    engine = evaluate_embeddings(x, people, pd.DataFrame({"sex": sex, "race": race}), EvaluationConfig(
        thresholds=tuple(parse_threshold(t) for t in ("fmr=0.01", "fmr=0.05", "0.3")), **cfg))
    # the engine's exact distances, written as a vendor would write a distance score file
    xq, scale = quantize(x)
    i, j = np.triu_indices(90, 1)
    d = 1.0 - (xq @ xq.T)[i, j] * scale
    names = [f"img{k}.png" for k in range(90)]
    (tmp_path / "m.csv").write_text("image,person,sex,race\n" + "".join(
        f"{n},{p},{a},{b}\n" for n, p, a, b in zip(names, people, sex, race, strict=True)))
    (tmp_path / "d.csv").write_text("image_a,image_b,score\n" + "".join(
        f"{names[a]},{names[b]},{float(v)!r}\n" for a, b, v in zip(i, j, d, strict=True)))
    ds = load_label_manifest(tmp_path / "m.csv", "person")
    pairs = listed_pairs(read_pair_scores(tmp_path / "d.csv", ds.table["image"].tolist(), ds.subjects), ds,
                         ["sex", "race"], ScoreConvention("distance"))
    # the engine's scores are as precise as its reproduction bound: say so, and the same gaps qualify
    precision = Precision(quantisation_error(x) + float32_dot_error(12))
    vendor = evaluate_listed(pairs, EvaluationConfig(
        thresholds=tuple(parse_threshold(t) for t in ("fmr=0.01", "fmr=0.05", "score=0.3")), **cfg), precision=precision)

    def same_rows(rows):  # a distance file knows no similarity; a fixed threshold is named score=...
        return [{k: v for k, v in r.items() if k not in ("similarity_threshold", "threshold_name")} for r in rows]

    assert len(engine.rates) == len(vendor.rates) > 0
    assert same_rows(vendor.rates) == same_rows(engine.rates)
    assert same_rows(vendor.calibration_rows) == same_rows(engine.calibration_rows)
    assert same_rows(vendor.disparity_rows) == same_rows(engine.disparity_rows)
    assert same_rows(vendor.inequity_rows) == same_rows(engine.inequity_rows)


def test_a_four_column_identity_takes_its_subjects_labels_and_refuses_mixed_ones(tmp_path):
    (tmp_path / "m.csv").write_text("image,person,sex,age\na.jpg,p1,F,30\nb.jpg,p1,F,41\nc.jpg,p2,M,50\nd.jpg,p3,M,60\n")
    (tmp_path / "s.txt").write_text("p1 p1 b.jpg 0.9\np1 p2 c.jpg 0.2\np2 p3 d.jpg 0.3\np3 p1 a.jpg 0.1\n")
    ds = load_label_manifest(tmp_path / "m.csv", "person")
    pf = read_pair_scores(tmp_path / "s.txt", ds.table["image"].tolist(), ds.subjects)
    pairs = listed_pairs(pf, ds, ["sex"], ScoreConvention("similarity"))
    assert pairs.n_genuine == 1 and pairs.n_impostor == 3 and pairs.n_images == 4 and pairs.n_subjects == 3
    with pytest.raises(ScoreFileError, match="identity 'p1' has several values of 'age'"):
        listed_pairs(pf, ds, ["age"], ScoreConvention("similarity"))


def candidates_setup(tmp_path: Path):
    (tmp_path / "probes.csv").write_text(
        "image,person,race\nq1.jpg,m1,A\nq2.jpg,m2,A\nq3.jpg,m3,B\nq4.jpg,m4,B\nq5.jpg,g1,B\n")
    (tmp_path / "gallery.csv").write_text("image,person\ng1a.jpg,g1\ng1b.jpg,g1\ng2.jpg,g2\ng3.jpg,g3\n")
    return load_label_manifest(tmp_path / "probes.csv", "person"), load_label_manifest(tmp_path / "gallery.csv", "person")


def test_candidate_lists_give_hand_counted_rates(tmp_path):
    probes, gallery = candidates_setup(tmp_path)
    (tmp_path / "c.csv").write_text(
        "probe,candidate_subject,rank,score\n"
        "q1.jpg,g2,1,91\nq1.jpg,g3,2,70\n"  # q1: a false candidate at 91
        "q2.jpg,g3,1,75\n"  # q2: at 75
        "q4.jpg,g2,1,85\n"  # q4: at 85; q3 returned nothing
        "q5.jpg,g1,1,99\nq5.jpg,g2,2,82\n"  # q5 is mated: its mate at rank 1 (99), a non-mate at 82
    )
    images, subjects = probes.table["image"].tolist(), probes.subjects
    lists = read_candidates(tmp_path / "c.csv", images, subjects, list(range(5)), set(gallery.subjects),
                            ScoreConvention("similarity"))
    rows = candidate_rates(lists, subjects, set(gallery.subjects), len(gallery), {"score=80": 80.0, "score=90": 90.0},
                           ScoreConvention("similarity"), probe_labels=probes.table[["race"]], by=[("race",)])
    got = {(r["group_name"], r["threshold_name"]): r for r in rows}
    assert got[("all", "score=80")]["false_positive_searches"] == 3  # q1 (91), q4 (85), q5's non-mate (82)
    assert got[("all", "score=90")]["false_positive_searches"] == 1  # q1
    assert got[("all", "score=80")]["nonmated_searches"] == 5 and got[("all", "score=80")]["fpir"] == 3 / 5
    assert got[("race=A", "score=80")]["false_positive_searches"] == 1  # q1; q2 at 75 is below
    assert got[("race=B", "score=80")]["false_positive_searches"] == 2  # q4, q5
    assert got[("all", "score=90")]["mated_searches"] == 1 and got[("all", "score=90")]["rank1_rate"] == 1.0
    assert got[("all", "score=90")]["fnir"] == 0.0 and got[("all", "score=90")]["gallery_size"] == 4
    assert math.isnan(got[("race=A", "score=80")]["fnir"])


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("probe,subject,rank,score\n", "line 1: unknown candidate file format"),
        ("probe,candidate_subject,rank,score\nzz.jpg,g1,1,9\n", "line 2: probe 'zz.jpg' is not an image of the manifest"),
        ("probe,candidate_subject,rank,score\nq1.jpg,g9,1,9\n", "line 2: candidate_subject 'g9' is not a subject"),
        ("probe,candidate_subject,rank,score\nq1.jpg,g1,first,9\n", "line 2: rank 'first' is not a whole number"),
        ("probe,candidate_subject,rank,score\nq1.jpg,g1,0,9\n", "line 2: rank 0 is not 1 or more"),
        ("probe,candidate_subject,rank,score\nq1.jpg,g1,1,high\n", "line 2: score 'high' is not a number"),
        ("probe,candidate_subject,rank,score\nq1.jpg,g1,1,9\nq1.jpg,g2,1,8\n", "line 3: probe 'q1.jpg' has rank 1 twice"),
        ("probe,candidate_subject,rank,score\nq1.jpg,g1,1,50\nq1.jpg,g2,2,80\n", "line 3: rank 2 scores more alike"),
    ],
)
def test_candidate_file_problems_are_refused_with_their_line(tmp_path, text, problem):
    probes, gallery = candidates_setup(tmp_path)
    (tmp_path / "c.csv").write_text(text)
    with pytest.raises(ScoreFileError, match="c.csv " + problem):
        read_candidates(tmp_path / "c.csv", probes.table["image"].tolist(), probes.subjects, list(range(5)),
                        set(gallery.subjects), ScoreConvention("similarity"))
