"""PriorTable: the (unit, seed) → latent lookup shared by `steer`'s file, Steering Init's socket and the runs."""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from lvo_core.errors import LVOError
from lvo_core.lvo.priors import PriorTable
from lvo_core.runs.report import save_tensors

ROWS = [(3, 1), (3, 2), (8, 1), (8, 2)]


def latents() -> torch.Tensor:
    return torch.arange(4 * 2 * 3 * 3, dtype=torch.float32).reshape(4, 2, 3, 3)


def test_rows_come_back_in_the_order_asked():
    table = PriorTable(ROWS, latents(), label="steering init")
    got = table([8, 3, 8], [2, 1, 1])
    assert got.shape == (3, 2, 3, 3)
    assert got[:, 0, 0, 0].tolist() == [54.0, 0.0, 36.0]  # rows 3, 0, 2 start at 18 × index
    assert table.label == "steering init" and len(table) == 4


def test_a_missing_row_names_unit_seed_and_the_fix():
    table = PriorTable(ROWS, latents(), source="the prior", fix="give Steering Init the same units and seeds")
    with pytest.raises(LVOError, match=r"the prior has no latent for unit 3, seed 5; give Steering Init the same"):
        table([3, 8, 3], [1, 2, 5])


def test_rows_and_latents_must_agree():
    with pytest.raises(LVOError, match="3 .unit, seed. rows for latents of shape .4, 2, 3, 3."):
        PriorTable(ROWS[:3], latents())
    repeated = PriorTable([(3, 1)] * 4, latents())  # seeds "1, 1": Steering Init makes the row twice
    assert repeated([3], [1])[0, 0, 0, 0].item() == 54.0


def test_reads_the_file_steer_writes_and_writes_the_same_format(tmp_path):
    # exactly what `steer` writes: runs.report.save_tensors with the rows as JSON in the header
    steer_file = tmp_path / "priors.safetensors"
    save_tensors({"latents": latents()}, steer_file, {"rows": json.dumps([{"unit": u, "seed": s} for u, s in ROWS])})
    table = PriorTable.load(steer_file)
    assert table.rows == ROWS and table.label == f"file:{steer_file}"
    torch.testing.assert_close(table([8], [1]), latents()[2:3])
    with pytest.raises(LVOError, match=f"priors file {steer_file} has no latent for unit 9, seed 1; run `steer`"):
        table([9], [1])
    again = table.save(tmp_path / "again.safetensors")
    torch.testing.assert_close(load_file(again)["latents"], latents())
    with safe_open(str(again), framework="pt") as fh, safe_open(str(steer_file), framework="pt") as ref:
        assert fh.metadata() == ref.metadata() and list(fh.keys()) == ["latents"]


def test_bad_files_are_named(tmp_path):
    wrong = tmp_path / "wrong.safetensors"
    save_tensors({"x": torch.zeros(1, 4, 2, 2)}, wrong)
    with pytest.raises(LVOError, match="has no 'latents' tensor"):
        PriorTable.load(wrong)
    rowless = tmp_path / "rowless.safetensors"
    save_tensors({"latents": torch.zeros(1, 4, 2, 2)}, rowless, {"rows": "[{\"unit\": 1}]"})
    with pytest.raises(LVOError, match="'rows' metadata is not a list"):
        PriorTable.load(rowless)
    with pytest.raises(LVOError, match="missing.safetensors"):
        PriorTable.load(tmp_path / "missing.safetensors")


def test_with_latents_keeps_rows_and_wording():
    table = PriorTable(ROWS, latents(), label="steering init", notes=["fell back to 500"])
    moved = table.with_latents(latents() * 2)
    assert moved.rows == ROWS and moved.label == "steering init" and moved.notes == ["fell back to 500"]
    assert moved([3], [2])[0, 0, 0, 0].item() == 36.0
