"""Pretrained weights read for `model.weights`: torchvision's by name from the local torch hub
cache (never downloaded), or a state-dict file in the shapes people save them (a training
checkpoint's dict, a wrapper's key prefix, an averaged model), as plain name -> tensor."""
from __future__ import annotations

import os
import pickle
from urllib.parse import urlparse

import torch

from pipeline.config import ConfigError


def named_weights(arch: str, name: str):
    """torchvision's weights enum for `name` (`IMAGENET1K_V1`, `ViT_B_16_Weights.DEFAULT`)."""
    import torchvision.models

    try:
        return (torchvision.models.get_weight(name) if "." in name
                else torchvision.models.get_model_weights(arch)[name])
    except (KeyError, ValueError, AttributeError):
        valid = [w.name for w in torchvision.models.get_model_weights(arch)]
        raise ConfigError(f"model.weights: {name!r} is neither a file nor weights of {arch} "
                          f"(one of {', '.join(valid + ['DEFAULT'])})") from None


def hub_state_dict(arch: str, name: str) -> dict[str, torch.Tensor]:
    weights = named_weights(arch, name)
    cached = os.path.join(torch.hub.get_dir(), "checkpoints",
                          os.path.basename(urlparse(weights.url).path))
    if not os.path.exists(cached):  # never a download: offline it would hang, then fail
        raise ConfigError(f"model.weights: {weights} is not in the torch hub cache ({cached}); "
                          f"fetch it where there is internet ({weights.url}) and copy it "
                          "there, or give a state-dict file")
    return torch.load(cached, map_location="cpu", weights_only=True)


WRAPPING_KEYS = ("model", "state_dict", "model_state_dict")
WRAPPER_PREFIXES = ("module.", "_orig_mod.", "model.")


def file_state_dict(path: str) -> dict[str, torch.Tensor]:
    if not os.path.isfile(path):
        raise ConfigError(f"model.weights: no such file {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as error:
        if "Unsupported global" in str(error):
            # weights_only refuses Python objects: a whole model (torch.save(model)) is one,
            # and unpickling it would run code from the file
            raise ConfigError(f"model.weights: {path} holds pickled Python objects, not only "
                              "tensors (a whole model saved with torch.save(model)?); save "
                              "model.state_dict() instead") from None
        # torch's weights-only refusal is a page advising weights_only=False: only its
        # last part, the reason, is said
        reason = str(error).rpartition("WeightsUnpickler error: ")[2].strip()
        reason = reason.splitlines()[0] if reason else type(error).__name__  # an empty file
        raise ConfigError(f"model.weights: {path} is not a PyTorch state dict "
                          f"({reason})") from None
    # a training checkpoint holds the state dict under a key ("model" here and in torchvision's
    # reference scripts, "state_dict" in Lightning's and many others, "model_state_dict")
    while isinstance(state, dict) and (inner := next(
            (state[k] for k in WRAPPING_KEYS if isinstance(state.get(k), dict)), None)):
        state = inner
    if not isinstance(state, dict):
        raise ConfigError(f"model.weights: {path} holds a {type(state).__name__}, not a "
                          "state dict")
    # SWA's / EMA's AveragedModel: the network under module., beside its step counter
    if "n_averaged" in state and any(k.startswith("module.") for k in state):
        state = {k: v for k, v in state.items() if k != "n_averaged"}
    # a network saved from inside a wrapper names every key after it: DataParallel / DDP
    # (module.), torch.compile (_orig_mod.), a Lightning module's attribute (model.)
    while state and (prefix := next((p for p in WRAPPER_PREFIXES
                                     if all(k.startswith(p) for k in state)), None)):
        state = {k.removeprefix(prefix): v for k, v in state.items()}
    # a checkpoint of this pipeline (state.pt) holds models.Network: the network is under net.
    if any(key.startswith("net.") for key in state):
        state = {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}
    return state
