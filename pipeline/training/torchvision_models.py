"""Any torchvision classification model by name, fitted to the data set's input and classes.

Small inputs, per family (the side `s`: the shorter of the data set's image height and width):
- resnet, resnext, wide_resnet without pretrained weights and s < 64: the CIFAR stem (3x3
  stride-1 first conv, no max-pool); the ImageNet stem (stride 4 before the first block) would
  leave a 32x32 image 1x1 after the last stage. With weights, the stem the weights have.
- every model whose weights declare a `min_size` above s (alexnet 63, inception_v3 75, densenet
  29, squeezenet 17-21, vgg and convnext 32, efficientnet_v2 33, swin 224, swin_v2 256): the
  input is resized up to that size (bilinear) in front of the network. Pretrained stems are
  kept as trained.
- vit_* and maxvit_t take exactly one size, built into their position embeddings (vit) or
  attention grids (maxvit): every input is resized to it. It is the size of the weights named
  in model.weights (vit_b_16's SWAG_E2E weights: 384, vit_h_14's: 518), else torchvision's
  224: weights of one size in a network of another would leave its position embeddings random.
- googlenet and inception_v3 with weights (named or a file): `transform_input` on, as
  torchvision's own builders set it whenever they load weights; those weights were trained on
  inputs scaled to [-1, 1], which it maps ImageNet-standardised inputs to.
- images of other than three channels: one channel is repeated to three (a fixed 1x1 conv);
  two are cycled (R, G, R); more than three pass through a trainable 1x1 conv that starts out
  passing the first three through, so the extra channels are learnt rather than dropped.
"""
from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from pipeline.config import ConfigError, Model
from pipeline.training import weight_files

CIFAR_STEM_FAMILIES = ("resnet", "resnext", "wide_resnet")
FIXED_SIZE = {"vit_": "image_size", "maxvit_": "input_size"}
"""Families of one input size -> the constructor argument that sets it."""
DEFAULT_FIXED_SIZE = 224  # torchvision's default for both, and their IMAGENET1K_V1 weights'
NO_AUX = ("googlenet", "inception_v3")  # their auxiliary heads return tuples in train mode
TRANSFORM_INPUT = ("googlenet", "inception_v3")
"""Families whose pretrained weights expect `transform_input=True` (see the module doc)."""


def names() -> list[str]:
    import torchvision.models

    return torchvision.models.list_models(module=torchvision.models)


def input_adapter(channels: int, size: int | None) -> nn.Sequential:
    """Map `channels` to three (a 1x1 conv, see the module doc) and resize to what the network
    needs; torch modules only, like the rest of a registered model."""
    layers: list[nn.Module] = []
    if channels != 3:
        to_rgb = nn.Conv2d(channels, 3, 1, bias=False)
        with torch.no_grad():
            to_rgb.weight.zero_()
            for out in range(3):
                to_rgb.weight[out, out % channels if channels < 3 else out] = 1.0
        layers.append(to_rgb.requires_grad_(channels > 3))
    if size is not None:
        layers.append(nn.Upsample(size=(size, size), mode="bilinear", align_corners=False))
    return nn.Sequential(*layers)


def _declared_size(cfg: Model) -> int:
    """The min_size of the weights model.weights names, else of the arch's first weights."""
    import torchvision.models

    if cfg.weights is not None and not cfg.weights_file:
        weights = weight_files.named_weights(cfg.arch, cfg.weights)
    else:
        weights = next(iter(torchvision.models.get_model_weights(cfg.arch)), None)
    return max(weights.meta.get("min_size", (1, 1))) if weights is not None else 1


def _family_kwargs(cfg: Model) -> dict[str, bool]:
    """Constructor arguments googlenet and inception_v3 need (see NO_AUX, TRANSFORM_INPUT)."""
    kwargs = {"aux_logits": False, "init_weights": True} if cfg.arch in NO_AUX else {}
    if cfg.arch in TRANSFORM_INPUT and cfg.weights is not None:
        # torchvision's googlenet() and inception_v3() set it whenever `weights is not None`;
        # built here with weights=None and loaded after, it is set by hand. A state-dict file
        # gets it too: for these two it is all but always torchvision's ImageNet weights
        # copied by hand (no hub cache) or a fine-tune of them, trained with it on; one
        # trained from scratch only gains a fixed per-channel affine map in front, which
        # fine-tuning's first conv and batch norm largely absorb. Decided from the config,
        # not from what is loaded, so a network rebuilt for a checkpoint is the one trained.
        kwargs["transform_input"] = True
    return kwargs


def _cifar_stem(resnet: nn.Module) -> None:
    resnet.conv1 = nn.Conv2d(3, resnet.conv1.out_channels, 3, stride=1, padding=1, bias=False)
    resnet.maxpool = nn.Identity()


def _weights_have_cifar_stem(path: str) -> bool:
    """Whether a weights file holds a resnet with the CIFAR stem: one trained here on small
    images, whose checkpoint as model.weights must keep its stem (in every rebuild of the
    model, with or without loading the weights). Memory-mapped: only conv1 is read."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - not readable here: load_weights says why, in one line
        return False
    state = state.get("model", state) if isinstance(state, dict) else {}
    keys = ("conv1.weight", "1.conv1.weight", "net.conv1.weight", "net.1.conv1.weight")
    weight = next((state[k] for k in keys if k in state), None)
    return weight is not None and tuple(weight.shape[-2:]) == (3, 3)


def build(cfg: Model, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """torchvision's `arch` for num_classes, adapted to input_shape as described above."""
    import torchvision.models

    if len(input_shape) != 3:
        raise ConfigError(f"model.arch: {cfg.arch} takes images (channels, height, width); "
                          f"the data set's inputs are {tuple(input_shape)}")
    kwargs = _family_kwargs(cfg)
    side, declared = min(input_shape[1:]), _declared_size(cfg)
    fixed = next((arg for prefix, arg in FIXED_SIZE.items() if cfg.arch.startswith(prefix)),
                 None)
    if fixed is not None:
        size = declared if cfg.weights is not None and not cfg.weights_file \
            else DEFAULT_FIXED_SIZE
        kwargs[fixed] = size if fixed == "image_size" else (size, size)
    else:
        size = declared if side < declared else None
    net = torchvision.models.get_model(cfg.arch, weights=None, num_classes=num_classes,
                                       **kwargs)
    if cfg.arch.startswith(CIFAR_STEM_FAMILIES) and (
            side < 64 if cfg.weights is None
            else cfg.weights_file and _weights_have_cifar_stem(cfg.weights)):
        _cifar_stem(net)
    if input_shape[0] != 3 or size is not None:
        net = nn.Sequential(input_adapter(input_shape[0], size), net)
        net.adapted = True
    return net


def head_name(net: nn.Module, input_shape: tuple[int, ...] | None = None) -> str:
    """The classifier head: the last Linear layer, else the last Conv2d. Per family (every
    model checked by bench/torchvision_coverage.py): `fc` (resnet, resnext, wide_resnet,
    regnet, shufflenet, googlenet, inception), `classifier.N` (alexnet, vgg, densenet, convnext,
    efficientnet, mobilenet, mnasnet; maxvit's `classifier.5`, after its pre-logits layer),
    `heads.head` (vit), `head` (swin), squeezenet's 1x1 conv `classifier.1`.

    "Last" in the order the layers run, given `input_shape`: a user's network may register its
    head before its backbone (`self.head` first in `__init__`), and by registration order its
    backbone's last layer was taken for the head, trained alone, while the real head stayed
    frozen at random. Without a shape, or when the pass fails, by registration order."""
    layers = [(name, m) for name, m in net.named_modules() if isinstance(m, nn.Linear | nn.Conv2d)]
    ran: list[str] = []
    if input_shape is not None:
        hooks = [m.register_forward_hook(lambda *_, name=name: ran.append(name))
                 for name, m in layers]
        was_training = net.training
        try:
            with torch.no_grad():
                net.eval()(torch.zeros(1, *input_shape))
        except (RuntimeError, ValueError, AssertionError):
            ran = []  # models.check says why, in its own words
        finally:
            net.train(was_training)
            for hook in hooks:
                hook.remove()
    kinds = dict(layers)
    order = ran or [name for name, _ in layers]
    linear = [name for name in order if isinstance(kinds[name], nn.Linear)]
    return (linear or order)[-1]


def _fitting(state: dict[str, torch.Tensor], own: dict[str, torch.Tensor], prefix: str
             ) -> tuple[dict[str, torch.Tensor], list[tuple[str, str]], list[str]]:
    """The tensors of `state` under the names `own` has them (a network behind an input
    adapter, Sequential(adapter, net), names its keys "1.<key>": torchvision's weights do
    not, a checkpoint of such a network does, either may go into either), the (own name,
    state name) of those whose shapes differ, and the state names with no place in `own`."""
    fitting, mismatched, unplaced = {}, [], []
    for key, value in state.items():
        name = next((k for k in (prefix + key, key, prefix + key.removeprefix("1."))
                     if k in own), None)
        if name is None:
            unplaced.append(key)
            continue
        if own[name].shape == value.shape:
            fitting[name] = value
        else:
            mismatched.append((name, key))
    return fitting, mismatched, unplaced


def load_weights(net: nn.Module, cfg: Model, arch_for_names: str | None,
                 head: str | None = None) -> int:
    """Copy every tensor of the weights whose name and shape match into net, except the
    classifier head's (`head`, else `head_name`'s; replaced for the data set's classes);
    returns how many were copied."""
    if cfg.weights_file or arch_for_names is None:
        state = weight_files.file_state_dict(cfg.weights)
    else:
        state = weight_files.hub_state_dict(arch_for_names, cfg.weights)
    own, head = net.state_dict(), (head or head_name(net)) + "."
    prefix = "1." if getattr(net, "adapted", False) else ""
    in_backbone = lambda k: k.startswith(prefix) and not k.startswith(head)
    fitting, mismatched, unplaced = _fitting(state, own, prefix)
    matched = {k: v for k, v in fitting.items() if not k.startswith(head)}
    if not matched:
        # a wrapper's prefix (AveragedModel's `module.`, `backbone.`, a dict under `net`) is
        # the usual cause: the first names of both show it
        theirs, ours = next(iter(state), "none"), next(iter(own), "none")
        raise ConfigError(f"model.weights: none of the {len(state)} tensors of "
                          f"{cfg.weights} fit model.arch {cfg.arch} (the file's names start "
                          f"{theirs!r}, the model's {ours!r})")
    # a backbone tensor of another shape (a ViT's position embeddings for another image size,
    # a resnet's CIFAR stem) would stay random, silently: the weights are of another variant
    wrong = [(name, key) for name, key in mismatched if in_backbone(name)]
    if wrong:
        name, key = wrong[0]
        raise ConfigError(f"model.weights: {key} of {cfg.weights} has shape "
                          f"{tuple(state[key].shape)}, {cfg.arch} here "
                          f"{tuple(own[name].shape)} (weights of another variant or input "
                          "size?)")
    # most of the backbone must come from the weights: a partial fit is another architecture
    # (or another version of its layer names), and training on it would be silently random
    backbone = [k for k in own if in_backbone(k)]
    if len(matched) < len(backbone) / 2:
        raise ConfigError(f"model.weights: only {len(matched)} of the {len(backbone)} "
                          f"backbone tensors of {cfg.arch} fit {cfg.weights} (weights of "
                          "another architecture?)")
    # tensors of the file with no place here: a few are expected (the old head, inception's
    # auxiliary classifier), a quarter of the file is a larger variant of the family (a
    # resnet34's blocks fill a resnet18 but its other 100 tensors were dropped, silently)
    unused = [key for key in unplaced if "aux" not in key.lower()]
    if len(unused) > len(state) / 4:
        raise ConfigError(f"model.weights: {len(unused)} of the {len(state)} tensors of "
                          f"{cfg.weights} have no place in {cfg.arch} (e.g. {unused[0]}): "
                          "weights of a larger variant or another architecture?")
    # the versions are this network's: only tensors of its shapes are loaded (mnasnet refuses
    # a state dict without them, and would rebuild its stem for a version-1 one)
    matched = OrderedDict(matched)
    matched._metadata = own._metadata
    net.load_state_dict(matched, strict=False)
    return len(matched)


def freeze_backbone(net: nn.Module, head: str | None = None) -> None:
    """Only the classifier head (`head`, else `head_name`'s) keeps training; the backbone's
    batch-norm statistics stay as loaded too (`models.Network.train` keeps those layers in
    eval mode)."""
    head = (head or head_name(net)) + "."
    # an input adapter mapping 4+ channels to three is new, like the head: frozen at its
    # initial value it passed the first three channels on and dropped the rest for good
    adapter = "0." if getattr(net, "adapted", False) else None
    for name, param in net.named_parameters():
        param.requires_grad_(name.startswith(head) or bool(
            adapter and name.startswith(adapter) and param.requires_grad))
    for name, module in net.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not name.startswith(head):
            module.frozen = True
