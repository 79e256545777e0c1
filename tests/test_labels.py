"""Labels pinned by hand: paired lift, per-phrase normalisation, tie-aware detection AUROC, held-out seeds disjoint
from labelling seeds, search by text, the MonoSemanticity score; then the whole path on the tiny model (CLI `label`
and `search --text`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lvo_core.analysis.bank import BANK_SEED
from lvo_core.analysis.labels import (
    LabelError,
    LabelSettings,
    LabelTable,
    auroc,
    average_ranks,
    detection_scores,
    label_seeds,
    lift_from,
    monosemanticity,
    normalise,
    rank_labels,
    score_labels,
    score_seeds,
    vocabulary,
)


def test_lift_is_the_paired_difference_averaged_over_seeds():
    # 2 phrases x 2 seeds x 3 units, and the empty prompt's generations from the same 2 seeds
    acts = torch.tensor([[[1.0, 0.0, 2.0], [3.0, 0.0, 2.0]],
                         [[0.0, 4.0, 1.0], [0.0, 2.0, 1.0]]])
    empty = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 1.0]])
    lift = lift_from(acts, empty)
    assert lift.tolist() == [[1.0, -0.5, 1.0], [-1.0, 2.5, 0.0]]


def test_normalisation_removes_what_a_phrase_does_to_every_unit():
    lift = torch.tensor([[1.0, 0.0, 0.0], [5.0, 5.0, 6.0]])  # phrase 1 raises everything: generic
    norm = normalise(lift)
    centred = torch.tensor([[2 / 3, -1 / 3, -1 / 3], [-1 / 3, -1 / 3, 2 / 3]])
    assert torch.allclose(norm, centred / centred.std(), atol=1e-6)
    # by raw lift the generic phrase labels unit 0; normalised, the specific one does
    assert int(lift[:, 0].argmax()) == 1 and int(norm[:, 0].argmax()) == 0
    labels = rank_labels(["specific", "generic"], lift, norm, [0, 1, 2], top=2)
    assert [lab["phrase"] for lab in labels[0]] == ["specific", "generic"]
    assert [lab["phrase"] for lab in labels[1]] == ["generic"]  # 'specific' does not raise unit 1 (lift 0)


def test_auroc_counts_ties_half_and_detection_reads_the_right_column():
    assert average_ranks(np.array([0.0, 2.0, 0.0, 1.0])).tolist() == [1.5, 4.0, 1.5, 3.0]
    assert auroc(np.array([2.0, 1.0]), np.array([0.0, 0.0])) == 1.0
    assert auroc(np.array([0.0, 0.0]), np.array([0.0, 0.0])) == 0.5
    assert auroc(np.array([1.0, 0.0]), np.array([0.5, 0.0])) == pytest.approx((1 + 1 + 0 + 0.5) / 4)  # pairs (1,.5) (1,0) (0,.5) (0,0)
    acts = torch.tensor([[3.0, 0.0], [2.0, 1.0], [0.0, 5.0], [1.0, 0.0]])  # images of phrases 0, 0, 1, 1
    scores = detection_scores(acts, [0, 0, 1, 1], {0: [0, 1], 1: [1]})
    assert scores == {0: {0: 1.0, 1: 0.0}, 1: {1: 0.625}}  # unit 1: (5>0, 5>1, 0=0, 0<1) -> 2.5/4
    labels = {0: [{"phrase": "b", "index": 1, "lift": 1.0, "normalised": 2.0},
                  {"phrase": "a", "index": 0, "lift": 1.0, "normalised": 1.0}]}
    score_labels(labels, acts, [0, 0, 1, 1])
    assert [(lab["phrase"], lab["score"]) for lab in labels[0]] == [("a", 1.0), ("b", 0.0)]  # ranked by score


def test_held_out_seeds_are_never_labelling_or_bank_seeds():
    labelling, held = set(label_seeds(10_000)), set(score_seeds(10_000))
    bank = set(range(BANK_SEED, BANK_SEED + 10_000))
    assert not labelling & held and not held & bank and not labelling & bank


def test_search_by_text_ranks_by_score_then_lift():
    phrases = ["red", "blue", "red circle"]
    lift = torch.tensor([[1.0, 0.2, 0.0], [0.0, 0.1, 2.0], [0.5, 0.9, 0.0]])
    labels = {0: [{"phrase": "red", "index": 0, "lift": 1.0, "normalised": 1.0, "score": 0.8}],
              1: [{"phrase": "red circle", "index": 2, "lift": 0.9, "normalised": 0.9, "score": 0.95}],
              2: [{"phrase": "blue", "index": 1, "lift": 2.0, "normalised": 2.0, "score": 0.99}]}
    table = LabelTable(phrases, lift, lift, labels, LabelSettings(), "up_blocks.1.attentions.1")
    hits = table.search("Red", top=3)
    assert [h["unit"] for h in hits[:2]] == [1, 0] and hits[0]["score"] == 0.95
    assert hits[2]["unit"] == 2 and hits[2]["label_rank"] is None  # filled in by lift, marked as not a label
    assert [h["unit"] for h in table.search("blue", top=1)] == [2]
    with pytest.raises(LabelError, match="matches no phrase"):
        table.search("rose")
    # a unit whose labels are mostly about the word beats one with a single better-scored matching label
    labels = {0: [{"phrase": "red", "index": 0, "lift": 1.0, "normalised": 1.0, "score": 0.9},
                  {"phrase": "blue", "index": 1, "lift": 1.0, "normalised": 1.0, "score": 0.9}],
              1: [{"phrase": "red", "index": 0, "lift": 1.0, "normalised": 1.0, "score": 0.8},
                  {"phrase": "red circle", "index": 2, "lift": 1.0, "normalised": 1.0, "score": 0.8}]}
    table = LabelTable(phrases, lift, lift, labels, LabelSettings(), "up_blocks.1.attentions.1")
    assert [(h["unit"], h["match"]) for h in table.search("red", top=2)] == [(1, 0.8), (0, 0.45)]


def test_monosemanticity_by_hand():
    same = torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    assert monosemanticity(same, torch.tensor([1.0, 2.0, 3.0])) == pytest.approx(1.0)
    mixed = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    # weights after min-max: 0, 0.5, 1 -> only the pair (1, 2) (orthogonal) and (0, 2) (weight 0) count
    assert monosemanticity(mixed, torch.tensor([1.0, 2.0, 3.0])) == pytest.approx(0.0)


def test_shipped_vocabularies():
    toy = vocabulary("toy")
    assert len(toy) == 35 and toy[:2] == ["red", "green"] and "white cross" in toy
    common = vocabulary("common")
    assert len(common) >= 1000 and len(set(common)) == len(common) and "rose" in common
    with pytest.raises(LabelError, match="neither a file nor a shipped list"):
        vocabulary("no-such-list")


def test_label_and_search_text_on_the_tiny_model(tmp_path, capsys):
    from lvo_core.cli import main

    words = tmp_path / "words.txt"
    words.write_text("red circle\nblue square\n# a comment\ngreen\n", encoding="utf-8")
    out = tmp_path / "labels"
    argv = ["label", "--model", "tiny", "--vocabulary", str(words), "--label-images", "2", "--score-images", "2",
            "--steps", "2", "--out", str(out)]
    assert main(argv) == 0
    table = LabelTable.load(out)
    assert table.phrases == ["red circle", "blue square", "green"] and table.lift.shape == (3, table.num_units)
    assert table.info["label_seeds"][1] <= table.info["score_seeds"][0]  # held-out seeds come after, disjoint
    again = tmp_path / "again"
    assert main([*argv[:-1], str(again)]) == 0
    assert torch.equal(LabelTable.load(again).lift, table.lift)  # same seeds, same lift
    for labs in table.labels.values():
        assert all(0.0 <= lab["score"] <= 1.0 for lab in labs)
        assert [lab["score"] for lab in labs] == sorted((lab["score"] for lab in labs), reverse=True)
    capsys.readouterr()
    assert main(["search", "--model", "tiny", "--text", "green", "--labels", str(out), "--top", "3",
                 "--out", str(tmp_path / "s")]) == 0
    hits = json.loads((tmp_path / "s" / "search.json").read_text())["hits"]
    assert len(hits) == 3 and all(h["phrase"] == "green" for h in hits)
    assert main(["search", "--model", "tiny", "--text", "green", "--out", str(tmp_path / "s")]) == 2
    assert "give --labels" in capsys.readouterr().err


def test_label_search_node_and_the_feature_card(tmp_path, fake_comfy, pack):
    from comfy_standins import run

    from lvo_core.model.tiny import random_sae
    from lvo_core.runs.feature_page import feature_card

    sae = random_sae(d_in=32)
    phrases = ["red", "blue"]
    lift = torch.zeros(2, sae.d_sae)
    lift[0, 5], lift[1, 9] = 1.0, 2.0
    labels = {5: [{"phrase": "red", "index": 0, "lift": 1.0, "normalised": 3.0, "score": 0.93}],
              9: [{"phrase": "blue", "index": 1, "lift": 2.0, "normalised": 4.0, "score": 0.6}]}
    LabelTable(phrases, lift, normalise(lift), labels, LabelSettings(), "up_blocks.1.attentions.1").save(tmp_path)
    units, table, report = run(pack, "LVOLabelSearch", fake_comfy.patcher, sae, str(tmp_path), "red", 2, "").args
    assert units.units[0] == 5 and units.kind == "sae" and json.loads(report)["hits"][0]["score"] == 0.93
    card = feature_card(5, hookpoint="up_blocks.1.attentions.1", sae=sae, labels=table)
    assert card["labels"]["trusted"] and card["label"] == "feature 5: red"
    card = feature_card(9, hookpoint="up_blocks.1.attentions.1", sae=sae, labels=table)
    assert not card["labels"]["trusted"] and card["label"] == "feature 9"  # 0.6 < 0.85: no name given
    with pytest.raises(Exception, match="give the label folder"):  # the pack imports its own copy of LabelError
        run(pack, "LVOLabelSearch", fake_comfy.patcher, sae, " ", "red", 2, "")
