"""Bad arguments, a missing model and a corrupt checkpoint raise the right Python exception, with the
engine's message (what is wrong and what to do)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import pytest

import fastar
from conftest import GOLDEN, PROMPT


def test_missing_model_folder(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(FileNotFoundError, match="no-such-model"):
        fastar.load(missing)


def test_missing_weights_file_in_a_model_folder(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    shutil.copy(GOLDEN / "config.json", folder / "config.json")
    with pytest.raises((FileNotFoundError, ValueError), match="safetensors"):
        fastar.load(folder)


@pytest.mark.parametrize("damage", ["header", "truncated"])
def test_corrupt_checkpoint(tmp_path, damage):
    folder = tmp_path / "model"
    shutil.copytree(GOLDEN, folder)
    weights = folder / "diffusion_pytorch_model.safetensors"
    data = bytearray(weights.read_bytes())
    if damage == "header":
        data[8:40] = b"{ this is not json at all !!!!!!"
    else:
        data = data[: len(data) // 2]
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="diffusion_pytorch_model.safetensors"):
        fastar.load(folder)


def test_corrupt_config(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(GOLDEN, folder)
    config = json.loads((folder / "config.json").read_text())
    config["num_layers"] = -3
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="num_layers"):
        fastar.load(folder)


def test_bad_arguments(golden_model, world_model):
    with pytest.raises(ValueError, match="nosuchpolicy"):
        golden_model.stream(policy="nosuchpolicy")
    with pytest.raises(ValueError, match="unknown policy option 'windw'"):
        golden_model.stream(policy="window", windw=3)
    with pytest.raises(ValueError, match="window"):
        golden_model.stream(policy="window", window="many")
    with pytest.raises(ValueError, match="device"):
        fastar.load(GOLDEN, device="tpu")
    with pytest.raises(ValueError, match="frames"):
        golden_model.stream(frames=0)
    with pytest.raises(ValueError, match="chunk-frames"):
        golden_model.stream(chunk_frames=0)
    with pytest.raises(ValueError, match="unknown word .purple."):
        world_model.stream(prompt="a purple dragon flies .")
    with pytest.raises(ValueError, match="text encoder"):
        golden_model.stream(prompt="a red circle .")


def test_bad_actions(golden_model, world_model):
    with world_model.stream(prompt=PROMPT, policy=None) as s:
        with pytest.raises(ValueError, match="unknown actions"):
            s.set_actions("RXZ")
        with pytest.raises(ValueError, match="4 actions for a chunk of 3 frames"):
            s.next_chunk("RRRR")
        with pytest.raises(ValueError, match="unknown word .purple."):
            s.set_prompt("a purple dragon flies .")
    with golden_model.stream(policy=None) as s:
        with pytest.raises(ValueError, match="world model"):
            s.next_chunk("RR")


def huge_model(tmp_path, **sizes):
    folder = tmp_path / "huge"
    folder.mkdir()
    config = json.loads((GOLDEN / "config.json").read_text())
    config.update(sizes)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_a_model_larger_than_the_machine_is_memory_error(tmp_path):
    folder = huge_model(tmp_path, dim=65536, ffn_dim=65536, num_heads=512)  # 448 GiB of fp32
    with pytest.raises(MemoryError, match="GiB"):
        fastar.load(folder, random_weights=0)


def test_a_failed_allocation_is_memory_error(tmp_path):
    # 8.6 GB of weights under a 3 GiB address space: one FFN matrix (4 GiB) cannot be allocated. The
    # limit keeps the test from ever touching the memory it asks for.
    folder = huge_model(tmp_path, dim=4096, ffn_dim=262144, num_heads=32, num_layers=1)
    code = textwrap.dedent(f"""
        import resource, fastar
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))
        try:
            fastar.load({str(folder)!r}, random_weights=0)
        except MemoryError as e:
            print("MemoryError:", e)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.startswith("MemoryError:"), out.stdout + out.stderr
