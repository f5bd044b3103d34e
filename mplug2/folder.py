"""The project's own model format: a folder with `config.json`, `model.safetensors` and `vocab.txt`.

Loading builds the model on the meta device and assigns the memory-mapped tensors, so no weight is allocated twice.
Weights may be stored as float16 to halve the size (the bundled model is); they are upcast on load.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from mplug2.config import MPLUG2Config
from mplug2.model import MPLUG2Retrieval

CONFIG, WEIGHTS, VOCAB = "config.json", "model.safetensors", "vocab.txt"
META_BUILD_BYTES = 256 * 2**20


def is_model_folder(path: str | Path) -> bool:
    path = Path(path)
    return (path / CONFIG).is_file() and (path / WEIGHTS).is_file()


def save_model_folder(
    model: MPLUG2Retrieval,
    vocab_file: str | Path,
    out_dir: str | Path,
    dtype: torch.dtype = torch.float32,
    provenance: dict | None = None,
) -> Path:
    """Write `model` in the project's format. `provenance` (source checkpoint, training run...) goes to config.json."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {
        k: v.detach().to("cpu", dtype if v.is_floating_point() else v.dtype).contiguous()
        for k, v in model.state_dict().items()
    }
    save_file(state, str(out / WEIGHTS), metadata={"format": "pt", "config": model.config.name})
    data = model.config.to_dict()
    if provenance:
        data["provenance"] = provenance
    (out / CONFIG).write_text(json.dumps(data, indent=2) + "\n")
    if Path(vocab_file).resolve() != (out / VOCAB).resolve():
        shutil.copyfile(vocab_file, out / VOCAB)
    return out


def load_model_folder(
    folder: str | Path, with_fusion: bool = True, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> MPLUG2Retrieval:
    folder = Path(folder)
    if not is_model_folder(folder):
        raise FileNotFoundError(f"{folder} is not a model folder (it needs {CONFIG} and {WEIGHTS})")
    config = MPLUG2Config.from_json(folder / CONFIG)
    # Big models are built on the meta device, so no weight is allocated twice. Building there imports
    # torch._dynamo (seconds, more than a small model's whole random init on the CPU), so small ones, the bundled
    # model among them, are built on the CPU: a search from the shell starts faster.
    big = (folder / WEIGHTS).stat().st_size > META_BUILD_BYTES
    with torch.device("meta") if big else contextlib.nullcontext():
        model = MPLUG2Retrieval(config, with_fusion=with_fusion)
    wanted = set(model.state_dict())
    state = {}
    with safe_open(str(folder / WEIGHTS), framework="pt", device=str(device)) as weights:
        for key in weights.keys():  # noqa: SIM118 (safe_open is not a dict)
            if key in wanted:
                tensor = weights.get_tensor(key)
                state[key] = tensor.to(dtype) if tensor.is_floating_point() else tensor
    missing = wanted - set(state)
    if missing:
        raise ValueError(f"{folder / WEIGHTS} lacks {len(missing)} weights, e.g. {sorted(missing)[:3]}")
    model.load_state_dict(state, assign=True)
    return model.eval()


def model_fingerprint(model: MPLUG2Retrieval) -> str:
    """A short id of the weights behind the ITC vectors (config + a sample and the sum of every tensor): vectors
    made by one model must never be searched with another's queries."""
    digest = hashlib.sha1(json.dumps(model.config.to_dict(), sort_keys=True).encode())
    with torch.no_grad():
        for name, tensor in sorted(model.state_dict().items()):
            if name.startswith(("fusion_encoder.", "itm_head.")):
                continue  # ITM only: the same ITC vectors come with or without it
            flat = tensor.detach().flatten().float().cpu()
            digest.update(name.encode())
            digest.update(flat[:16].numpy().tobytes())
            digest.update(np.float64(flat.double().sum()).tobytes())
    return digest.hexdigest()[:16]
