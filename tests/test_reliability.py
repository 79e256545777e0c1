"""Issue 22, replayed: what a hostile or clumsy user points the pack at can neither destroy, corrupt nor silently
mislead. One table through the CLI (one ``error:`` line, status 2, no traceback, nothing outside ``--out`` touched,
no special file replaced), then the guarantees that need more than one command: safe writes, a bank that keeps
blocks apart and refuses a foreign model before any work, corrupt bank files named, a read-only bank used, two
builders that both keep their work, a killed rerun that never passes as complete, and the nodes' bank names and
unit lists. Everything runs on the tiny random model in seconds."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import struct
import threading
import zlib
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import pytest
import torch
from safetensors.torch import load_file, save_file

from lvo_core.analysis.bank import BankError, BankSettings, SampleBank, build_bank
from lvo_core.analysis.feature_search import search_features
from lvo_core.cli import build_parser, main
from lvo_core.commands.boundary import rerun_settings
from lvo_core.fileio import OutputPathError, atomic_write, ensure_folder, write_text
from lvo_core.model.backend import DiffusersBackend
from lvo_core.model.tiny import CharPromptEncoder, random_sae, sd15_scheduler, tiny_unet, tiny_vae

HP = "up_blocks.1.attentions.1"
DOWN = "down_blocks.1.resnets.0"
SMALL = BankSettings(size=4, steps=2, draws=1, batch_size=2)
ROOT_USER = hasattr(os, "geteuid") and os.geteuid() == 0


def make_backend(unet, hookpoint: str = HP, shape=(4, 16, 16)) -> DiffusersBackend:
    return DiffusersBackend(unet, hookpoint, scheduler=sd15_scheduler(), decoder=tiny_vae(),
                            encode_prompt=CharPromptEncoder(), latent_shape=shape)


@pytest.fixture(scope="module")
def backend(unet):
    return make_backend(unet)


@pytest.fixture(scope="module")
def built(tmp_path_factory, backend, unet):
    """A bank folder with SAE scores at the default block and raw scores at another block, both at t = 200."""
    folder = tmp_path_factory.mktemp("banks") / "bank"
    sae = random_sae()
    build_bank(backend, SMALL, sae=sae, timesteps=[200], out=folder)
    build_bank(make_backend(unet, DOWN), SMALL, timesteps=[200], out=folder)
    return folder, sae


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------- the CLI table
def bomb_png(path: Path, side: int = 30000) -> Path:
    """A valid PNG header claiming side × side pixels (what a 30000×30000 upload looks like to PIL's guard)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) +
                     chunk(b"IEND", b""))
    return path


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def result_json(tmp: Path, **record) -> Path:
    path = tmp / "result.json"
    path.write_text(json.dumps(record))
    return path


def sae_without_hookpoint(tmp: Path) -> Path:
    folder = tmp / "w16"
    folder.mkdir()
    save_file({"encoder.weight": torch.randn(12, 6), "encoder.bias": torch.randn(12), "W_dec": torch.randn(12, 6),
               "b_dec": torch.randn(6)}, str(folder / "sae.safetensors"))
    (folder / "cfg.json").write_text(json.dumps({"k": 3, "d_in": 6}))
    return folder


def bank_json(tmp: Path, index) -> Path:
    folder = tmp / "bank"
    folder.mkdir()
    (folder / "bank.json").write_text(json.dumps(index))
    return folder


@dataclass
class Case:
    id: str
    item: int  # the numbered item of issue 22
    argv: Callable[[Path], list[str]]
    fragments: tuple[str, ...]
    absent: tuple[str, ...] = ()
    needs: str = ""  # "fifo": skipped where os.mkfifo is missing


CASES = [
    Case("special file as a file --out", 1, lambda t: ["analyze", "--steps", "1", "--out", str(fifo(t / "null"))],
         ("special file",), needs="fifo"),
    Case("symlink as a file --out", 1,
         lambda t: ["analyze", "--steps", "1", "--out", str(_link(t))], ("symbolic link",)),
    Case("folder where a file goes", 8, lambda t: ["analyze", "--steps", "1", "--out", str(t)], ("is a folder",)),
    Case("file where a folder goes", 8, lambda t: ["visualize", "--units", "1", "--out", str(_file(t))],
         ("not a folder",)),
    Case("special file where a folder goes", 8,
         lambda t: ["visualize", "--units", "1", "--out", str(fifo(t / "pipe"))], ("not a folder",), needs="fifo"),
    Case("seed beyond 64 bits", 8, lambda t: ["visualize", "--units", "1", "--seeds", "18446744073709551616"],
         ("--seeds", "0..2^63-1")),
    Case("unit range of ten billion", 8, lambda t: ["visualize", "--units", "0-10000000000"],
         ("--units", "more than 1048576")),
    Case("seed of the generation beyond 64 bits", 8, lambda t: ["analyze", "--seed", str(2 ** 70)], ("--seed",)),
    Case("device not on this machine", 8, lambda t: ["visualize", "--units", "1", "--device", "cuda:7"],
         ("--device cuda:7",)),
    Case("device that is no device", 8, lambda t: ["visualize", "--units", "1", "--device", "gpu please"],
         ("is not a torch device",)),
    Case("search a text file", 8, lambda t: ["search", "--image", str(_text(t))], ("not an image",)),
    Case("search a decompression bomb", 8, lambda t: ["search", "--image", str(bomb_png(t / "big.png"))],
         ("too large to decode",)),
    Case("from-json with a string for an integer", 8,
         lambda t: ["visualize", "--from-json", str(result_json(t, command="visualize", args={"steps": "5"}))],
         ("--steps is recorded as '5'", "expected an integer")),
    Case("from-json without args", 8,
         lambda t: ["visualize", "--from-json", str(result_json(t, command="visualize"))], ("records no arguments",)),
    Case("from-json with a unit list of text", 8,
         lambda t: ["visualize", "--from-json", str(result_json(t, command="visualize", args={"units": ["a"]}))],
         ("--units is recorded as",)),
    Case("examples at t = 5000", 12, lambda t: ["examples", "--unit", "1", "--timestep", "5000"],
         ("--timestep 5000", "0..999")),
    Case("SAE cfg without a hookpoint, wrong width", 12,
         lambda t: ["visualize", "--units", "1", "--sae", str(sae_without_hookpoint(t))],
         ("reads 6 channels",), absent=("unknown hookpoint",)),
    Case("bank.json of the wrong structure", 5,
         lambda t: ["visualize", "--units", "1", "--bank", str(bank_json(t, [1, 2]))],
         ("bank.json", "is not a JSON object", "delete the bank folder")),
    Case("bank.json of main's format 1", 5,
         lambda t: ["visualize", "--units", "1", "--bank", str(bank_json(t, {"format_version": 1}))],
         ("format 1", "delete the bank folder")),
    Case("bank kind that is a path", 7,
         lambda t: ["bank", "--out", str(bank_json(t, _index(scores=[{"file": "x", "hookpoint": HP,
                                                                       "kind": "/../../tmp/x", "sae_id": "",
                                                                       "timestep": 200, "rows": 4, "units": 4,
                                                                       "sha256": "0"}])))],
         ("score entry", "delete the bank folder")),
    Case("bank with two batches at one start", 7,
         lambda t: ["bank", "--out", str(bank_json(t, _index(batches=[_batch(0), _batch(0)])))],
         ("two batches start at the same sample",)),
    Case("bank with a zero-row batch", 3,
         lambda t: ["bank", "--out", str(bank_json(t, _index(batches=[{**_batch(0), "count": 0}])))],
         ("batch entry",)),
]


def _link(tmp: Path) -> Path:
    (tmp / "elsewhere.txt").write_text("keep me")
    (tmp / "link.safetensors").symlink_to(tmp / "elsewhere.txt")
    return tmp / "link.safetensors"


def _file(tmp: Path) -> Path:
    (tmp / "a_file").write_text("keep me")
    return tmp / "a_file"


def _text(tmp: Path) -> Path:
    (tmp / "notes.png").write_text("not a picture")
    return tmp / "notes.png"


def _index(batches=(), scores=()) -> dict:
    return {"format_version": 2, "settings": {"size": 4, "steps": 2, "seed": 1 << 20, "draws": 1, "batch_size": 2},
            "model_id": "0" * 16, "latent_shape": [4, 16, 16], "size": 0, "batches": list(batches),
            "scores": list(scores)}


def _batch(start: int) -> dict:
    return {"file": f"latents-{start:05d}.safetensors", "start": start, "count": 2, "sha256": "0" * 64}


@pytest.mark.parametrize("case", CASES, ids=[f"{c.item}: {c.id}" for c in CASES])
def test_cli_refuses_with_one_line(case, tmp_path, monkeypatch):
    if case.needs == "fifo" and not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this system")
    monkeypatch.chdir(tmp_path)
    argv = case.argv(tmp_path)
    before = {p: (os.lstat(p).st_mode, p.read_bytes() if p.is_file() and not p.is_symlink() else None)
              for p in tmp_path.rglob("*") if not stat.S_ISFIFO(os.lstat(p).st_mode)}
    kinds = {p: stat.S_IFMT(os.lstat(p).st_mode) for p in tmp_path.rglob("*")}
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's errors: the same one-line shape
            code = exc.code
    lines = [line for line in err.getvalue().splitlines() if line.strip() and not line.startswith("lvo_core ")]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err.getvalue()
    assert "Traceback" not in err.getvalue() + out.getvalue()
    for fragment in case.fragments:
        assert fragment in lines[0], f"'{fragment}' missing from: {lines[0]}"
    for fragment in case.absent:
        assert fragment not in lines[0], lines[0]
    for p, (mode, data) in before.items():  # nothing touched: no special file replaced, no file rewritten
        assert os.lstat(p).st_mode == mode and (data is None or p.read_bytes() == data), p
    assert {p: stat.S_IFMT(os.lstat(p).st_mode) for p in tmp_path.rglob("*")} == kinds  # and nothing new


def test_every_item_of_the_issue_is_replayed():
    """Items 2, 4, 6, 9, 10, 11 need more than one command: the tests below."""
    assert {c.item for c in CASES} | {2, 4, 6, 9, 10, 11} == set(range(1, 13))


# ---------------------------------------------------------------------------------------------- safe writes
def test_atomic_write_replaces_only_regular_files(tmp_path):
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep me")
    (tmp_path / "link.json").symlink_to(target)
    for bad, said in [(tmp_path / "link.json", "symbolic link"), (tmp_path, "is a folder")]:
        with pytest.raises(OutputPathError, match=said):
            write_text(bad, "{}")
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "pipe")
        with pytest.raises(OutputPathError, match="special file"):
            write_text(tmp_path / "pipe", "{}")
        assert stat.S_ISFIFO(os.lstat(tmp_path / "pipe").st_mode)
    # the old predictable temporary name, planted as a link, is never followed
    (tmp_path / f".result.json.tmp-{os.getpid()}").symlink_to(target)
    write_text(tmp_path / "result.json", "new")
    assert target.read_text() == "keep me" and (tmp_path / "result.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == []
    with pytest.raises(OutputPathError, match="not a folder"):
        ensure_folder(target)


def test_written_files_follow_the_umask(tmp_path, backend):
    old = os.umask(0o022)
    try:
        atomic_write(tmp_path / "a.bin", lambda tmp: tmp.write_bytes(b"x"))
        build_bank(backend, BankSettings(size=2, steps=1, draws=1), out=tmp_path / "bank")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [tmp_path / "a.bin", *(tmp_path / "bank").iterdir()]
             if p.name != ".lock"}
    assert set(modes.values()) == {0o644}, modes  # batches as readable as the index (was 0600 vs 0644)


# ---------------------------------------------------------------------------------------------- the bank
def test_bank_keeps_the_scores_of_several_blocks_apart(built, backend, unet):
    folder, sae = built
    index = json.loads((folder / "bank.json").read_text())
    assert sorted((e["hookpoint"], e["kind"], e["timestep"]) for e in index["scores"]) == [
        (DOWN, "raw", 200), (HP, "sae", 200)]
    bank = SampleBank.load(folder)
    assert bank.hookpoints == [DOWN, HP] and bank.hookpoint is None  # two blocks: the user binds one
    with pytest.raises(BankError, match="not bound to a block"):
        bank.table(200)
    bank.check_matches(make_backend(unet, DOWN))
    down = bank.table(200)
    bank.check_matches(backend, sae)
    with pytest.raises(BankError, match=f"no raw scores of {HP}"):  # never the other block's raw scores
        bank.table(200)
    assert bank.table(200, sae).shape == (4, sae.d_sae) and down.shape[0] == 4 and down.shape[1] != sae.d_sae
    assert all(len(e["sha256"]) == 64 for e in index["scores"] + index["batches"])


def test_foreign_bank_is_refused_before_any_work(built, unet, monkeypatch):
    folder, sae = built
    for name in ("sample_with", "score_latents"):
        monkeypatch.setattr(f"lvo_core.analysis.bank.{name}", lambda *a, **k: pytest.fail("work before the check"))
    stranger = make_backend(tiny_unet(seed=1))
    before = snapshot(folder)
    with pytest.raises(BankError, match="another model"):
        build_bank(stranger, SMALL, sae=sae, timesteps=[500], out=folder)
    with pytest.raises(BankError, match="steps 2, this run asks 3.; give --steps 2"):
        build_bank(make_backend(unet), BankSettings(size=4, steps=3, draws=1), out=folder)
    bank = SampleBank.load(folder)
    with pytest.raises(BankError, match="different model"):
        bank.ensure_scores(stranger, sae, [500])
    with pytest.raises(BankError, match="4×16×16 latents, this run makes 4×8×8"):
        bank.check_matches(make_backend(unet, shape=(4, 8, 8)), sae)
    assert snapshot(folder) == before


def corrupt_cases():
    def flip(folder):
        path = folder / "latents-00000.safetensors"
        data = bytearray(path.read_bytes())
        data[-3] ^= 0x40
        path.write_bytes(bytes(data))
        return path.name

    def truncate(folder):
        path = folder / "latents-00002.safetensors"
        path.write_bytes(path.read_bytes()[:40])
        return path.name

    def nan_scores(folder):  # NaN written with a matching digest: only the finiteness check catches it
        index = json.loads((folder / "bank.json").read_text())
        entry = next(e for e in index["scores"] if e["kind"] == "sae")
        path = folder / entry["file"]
        table = load_file(path)["scores"]
        table[0, 0] = float("nan")
        save_file({"scores": table}, str(path))
        import hashlib

        entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        (folder / "bank.json").write_text(json.dumps(index))
        return path.name

    def link(folder):
        path = folder / "latents-00000.safetensors"
        shutil.move(path, folder.parent / "moved.safetensors")
        path.symlink_to(folder.parent / "moved.safetensors")
        return path.name

    def missing_field(folder):
        index = json.loads((folder / "bank.json").read_text())
        del index["latent_shape"]
        (folder / "bank.json").write_text(json.dumps(index))
        return "bank.json"

    def header(folder):
        path = folder / "latents-00000.safetensors"
        data = bytearray(path.read_bytes())
        data[0:8] = struct.pack("<Q", 1 << 40)
        path.write_bytes(bytes(data))
        return path.name

    return {"flipped bit": flip, "truncated batch": truncate, "NaN scores": nan_scores, "symlinked batch": link,
            "index without latent_shape": missing_field, "flipped header": header}


@pytest.mark.parametrize("how", list(corrupt_cases()))
def test_corrupt_bank_files_are_named(built, tmp_path, how):
    folder = tmp_path / "bank"
    shutil.copytree(built[0], folder, symlinks=True)
    name = corrupt_cases()[how](folder)
    with pytest.raises(BankError) as info:
        SampleBank.load(folder)
    assert name in str(info.value) and "delete the bank folder" in str(info.value)


def test_unlisted_files_are_ignored_and_a_zero_row_file_never_hangs(built, tmp_path):
    folder = tmp_path / "bank"
    shutil.copytree(built[0], folder)
    save_file({"latents": torch.zeros(0, 4, 16, 16)}, str(folder / "latents-00004.safetensors"),
              metadata={"start": "4", "model_id": "x"})
    save_file({"latents": torch.zeros(2, 4, 16, 16)}, str(folder / "latents-00001.safetensors"),
              metadata={"start": "1", "model_id": "x"})  # a duplicate start no index lists
    torch.testing.assert_close(SampleBank.load(folder).latents, SampleBank.load(built[0]).latents)


def test_read_only_bank_is_usable(built, backend, tmp_path, monkeypatch):
    folder, sae = built
    monkeypatch.setattr("lvo_core.analysis.bank.atomic_write", lambda *a: pytest.fail("reading wrote a file"))
    if ROOT_USER:  # root ignores permissions: the lock file's open fails as it would for a user
        def denied(path):
            raise PermissionError(13, "Permission denied", str(path))
        monkeypatch.setattr("lvo_core.analysis.bank._open_lock", denied)
    shared = tmp_path / "shared"
    shutil.copytree(folder, shared)
    for p in [shared, *shared.iterdir()]:
        p.chmod(p.stat().st_mode & ~0o222)
    try:
        before = snapshot(shared)
        bank = build_bank(backend, SMALL, sae=sae, timesteps=[200], out=shared)  # all there: read only
        assert bank.table(200, sae).shape[0] == 4
        assert build_bank(backend, BankSettings(size=2, steps=2, draws=1), out=shared).size == 4
        with pytest.raises(BankError, match="cannot be written.*score it at t = 500"):
            bank.ensure_scores(backend, sae, [500])
        assert snapshot(shared) == before
    finally:
        for p in [shared, *shared.iterdir()]:
            p.chmod(p.stat().st_mode | 0o200)


def test_concurrent_builders_both_keep_their_work(backend, tmp_path):
    sae, errors = random_sae(), []

    def build(t):
        try:
            build_bank(backend, SMALL, sae=sae, timesteps=[t], out=tmp_path / "bank")
        except BaseException as exc:  # reported to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=build, args=(t,)) for t in (200, 500)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    index = json.loads((tmp_path / "bank" / "bank.json").read_text())
    assert sorted(e["timestep"] for e in index["scores"]) == [200, 500] and index["size"] == 4


def test_a_smaller_bank_is_the_prefix_and_a_larger_one_grows(backend, tmp_path):
    sae = random_sae()
    big = build_bank(backend, BankSettings(size=6, steps=2, draws=1, batch_size=4), sae=sae, timesteps=[200])
    small = build_bank(backend, SMALL, sae=sae, timesteps=[200], out=tmp_path / "bank")
    prefix = big.prefix(4)
    torch.testing.assert_close(prefix.latents, small.latents)
    torch.testing.assert_close(prefix.table(200, sae), small.table(200, sae))
    grown = build_bank(backend, BankSettings(size=6, steps=2, draws=1), sae=sae, timesteps=[200],
                       out=tmp_path / "bank")
    torch.testing.assert_close(grown.latents, big.latents)
    torch.testing.assert_close(grown.table(200, sae), big.table(200, sae))
    with pytest.raises(BankError, match="--bank-size 9"):
        big.prefix(9)


def test_feature_search_reads_the_bank_beside_images_of_any_size(built, unet):
    folder, sae = built
    bank = SampleBank.load(folder)
    pool = None
    for side in (8, 16, 24):
        images = torch.randn(1, 4, side, side)
        hits = search_features(make_backend(unet, shape=(4, side, side)), sae, images, top=3, draws=1, bank=bank,
                               bank_backend=make_backend(unet))
        table = bank.table(200, sae).float().mean(0)
        pool = table if pool is None else pool
        torch.testing.assert_close(table, pool)  # the same baseline whatever the image size
        assert len(hits[0]) == 3 and hits[0][0].heatmap.shape == (side, side) and hits[0][0].lift is not None


# ---------------------------------------------------------------------------------------------- run folders
def test_a_killed_rerun_never_passes_as_complete(backend, tmp_path, monkeypatch):
    from lvo_core.lvo.optimize import preset
    from lvo_core.runs.record import run_visualize

    sae = random_sae()
    common = dict(sae=sae, seeds=[1], timesteps=[0], prior="random", eval_samples=1, batch_size=1)
    run_visualize(tmp_path, backend, [3], config=preset("sae", steps=1), **common)
    assert json.loads((tmp_path / "result.json").read_text())["complete"]

    class Killed(BaseException):
        pass

    def killed(*args, on_batch=None, **kwargs):
        raise Killed  # kill -9 right after the run started: nothing of it is finished

    monkeypatch.setattr("lvo_core.lvo.pipeline.visualize", killed)
    with pytest.raises(Killed):
        run_visualize(tmp_path, backend, [3], resume=False, config=preset("sae", steps=2), **common)
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["complete"] is False and result["running"] is True and result["config"]["steps"] == 2
    assert not (tmp_path / "latents.safetensors").exists() and not (tmp_path / "contact_sheet.png").exists()


def test_atlas_marks_a_unit_complete_only_with_all_its_rows(tmp_path):
    from lvo_core.lvo.pipeline import Row
    from lvo_core.runs.atlas import merge

    rows = {Row(2, 200, 1): {"stem": "feature2_t200_seed1", "metrics": {"activation": 1.0, "ratio": None}}}
    store = SimpleNamespace(out=tmp_path, finished=lambda: rows, image=lambda info: torch.zeros(8, 8, 3).numpy())
    planned = {2: {Row(2, 200, 1), Row(2, 200, 2)}, 3: {Row(3, 200, 1)}}
    index = merge(store, [2, 3], "feature", {"hookpoint": HP}, planned)
    assert {e["unit"]: e["complete"] for e in index["units"]} == {2: False, 3: False}
    assert index["finished_units"] == 0
    rows[Row(2, 200, 2)] = {"stem": "feature2_t200_seed2", "metrics": {"activation": 2.0, "ratio": None}}
    assert merge(store, [2, 3], "feature", {"hookpoint": HP}, planned)["finished_units"] == 1


def test_from_json_never_chooses_where_files_go(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = result_json(tmp_path, command="visualize", args={"out": "/tmp/someone-elses", "steps": 5, "units": [3]})
    for argv, out in [([], "lvo_runs/visualize"), (["--out", "mine"], "mine")]:
        args = ["visualize", "--from-json", str(path), *argv]
        s = rerun_settings(build_parser().parse_args(args), args)
        assert s.out == out and s.steps == 5 and s.units == [3]


# ---------------------------------------------------------------------------------------------- the nodes
def test_node_bank_names_stay_inside_the_output_folder(pack, fake_comfy, monkeypatch, tmp_path):
    import sys

    nodes = sys.modules["comfyui_lvo.nodes.bank_nodes"]
    monkeypatch.setattr(fake_comfy.glue, "output_directory", lambda: tmp_path)
    assert nodes.bank_folder("toy_bank-2") == tmp_path / "lvo_banks" / "toy_bank-2"
    assert nodes.bank_folder("  ") is None
    for name in ("D:evil", "C:\\x", "/abs", "..", ".", "a/b", "..\\up", ".hidden", "x" * 101):
        with pytest.raises(Exception, match="plain folder name") as info:
            nodes.bank_folder(name)
        assert "LVOError" in {k.__name__ for k in type(info.value).__mro__}
    (tmp_path / "lvo_banks").mkdir()
    (tmp_path / "lvo_banks" / "linked").symlink_to(tmp_path)
    with pytest.raises(Exception, match="leads outside"):
        nodes.bank_folder("linked")


def test_node_unit_lists_are_bounded_like_the_cli(pack, fake_comfy):
    from comfy_standins import nodes_of

    hook = nodes_of(pack)["LVOFeatureHook"]
    with pytest.raises(Exception, match="more than 1048576"):
        hook.execute(model=fake_comfy.patcher, units="0-10000000000", hookpoint="", sae=None)


def test_cli_bank_then_visualize_uses_the_bank_as_it_is(tmp_path, capsys):
    """Issue 21's SD1.5 sequence on the tiny model: a bank of another size and steps is used whole by default, as
    a prefix with a smaller --bank-size, and a bank of other sampler settings is refused naming the flag."""
    bank = tmp_path / "bank"
    assert main(["bank", "--size", "6", "--steps", "3", "--out", str(bank)]) == 0
    common = ["visualize", "--units", "3", "--seeds", "1", "--steps", "1", "--eval-samples", "1", "--bank", str(bank)]
    assert main(common + ["--out", str(tmp_path / "whole")]) == 0
    assert main(common + ["--bank-size", "4", "--out", str(tmp_path / "prefix")]) == 0
    whole = json.loads((tmp_path / "whole" / "result.json").read_text())
    prefix = json.loads((tmp_path / "prefix" / "result.json").read_text())
    assert whole["bank"]["size"] == 6 and prefix["bank"]["size"] == 4 and whole["bank"]["settings"]["steps"] == 3
    start = load_file(tmp_path / "prefix" / "latents.safetensors")["init_latents"][0]
    pool = SampleBank.load(bank).latents
    assert any(torch.equal(start, z) for z in pool[:4])  # the start came from the first four pool images
    capsys.readouterr()
    assert main(["bank", "--size", "6", "--steps", "2", "--out", str(bank)]) == 2
    assert "give --steps 3" in capsys.readouterr().err
