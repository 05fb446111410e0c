"""Models of chapter 01: shapes, MedMNIST's ResNet definition, the MAC counter, the registry."""

import math

import pytest
import torch
import torch.nn as nn
import torchvision

from medlib.cost import count_macs
from medlib.models.cnn import MODELS, SimpleCNN, build_model, resnet18, resnet50


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("channels,classes", [(1, 2), (3, 5)])
@pytest.mark.parametrize("size", [28, 64])
def test_output_shapes(name, channels, classes, size):
    if name == "resnet50" and size == 64:
        pytest.skip("slow; ResNet-50 at 28 px covers the same code path")
    model = build_model(name, channels, classes, size).eval()
    x = torch.randn(2, channels, size, size)  # (B, C, H, W)
    assert model(x).shape == (2, classes)


def _medmnist_resnet_convs(blocks, bottleneck, in_channels):
    """Conv weight shapes of MedMNIST's ResNet (experiments/MedMNIST2D/models.py), written
    from its definition: 3x3 stride-1 stem to 64; stages of 64/128/256/512 planes with strides
    1/2/2/2; a 1x1 shortcut conv when the stride or the channel count changes."""
    shapes = [(64, in_channels, 3, 3)]
    expansion = 4 if bottleneck else 1
    c_in = 64
    for planes, n in zip((64, 128, 256, 512), blocks):
        for i in range(n):
            stride = (1 if planes == 64 else 2) if i == 0 else 1
            if bottleneck:
                shapes += [(planes, c_in, 1, 1), (planes, planes, 3, 3), (planes * 4, planes, 1, 1)]
            else:
                shapes += [(planes, c_in, 3, 3), (planes, planes, 3, 3)]
            if stride != 1 or c_in != planes * expansion:
                shapes.append((planes * expansion, c_in, 1, 1))
            c_in = planes * expansion
    return shapes


def _conv_shapes(model):
    return sorted(tuple(m.weight.shape) for m in model.modules() if isinstance(m, nn.Conv2d))


@pytest.mark.parametrize("channels,classes", [(1, 2), (3, 5)])
def test_resnet18_matches_medmnist_definition(channels, classes):
    model = resnet18(channels, classes)
    assert _conv_shapes(model) == sorted(_medmnist_resnet_convs((2, 2, 2, 2), False, channels))
    assert model.conv1.stride == (1, 1) and model.conv1.kernel_size == (3, 3)
    assert isinstance(model.maxpool, nn.Identity)
    assert model.fc.weight.shape == (classes, 512)
    n_bn = sum(m.num_features for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    n_conv = sum(torch.Size(s).numel() for s in _medmnist_resnet_convs((2, 2, 2, 2), False, channels))
    expected = n_conv + 2 * n_bn + 512 * classes + classes
    assert sum(p.numel() for p in model.parameters()) == expected
    if (channels, classes) == (1, 2):
        assert expected == 11_168_706  # MedMNIST's ResNet18(in_channels=1, num_classes=2)
    # 28 px: feature maps 28 -> 28 -> 14 -> 7 -> 4 through the stem and the four stages
    x = torch.randn(1, channels, 28, 28)
    x = model.relu(model.bn1(model.conv1(x)))
    sizes = []
    for layer in (model.layer1, model.layer2, model.layer3, model.layer4):
        x = layer(x)
        sizes.append(x.shape[-1])
    assert sizes == [28, 14, 7, 4]


def test_resnet50_matches_medmnist_definition():
    model = resnet50(1, 2)
    assert _conv_shapes(model) == sorted(_medmnist_resnet_convs((3, 4, 6, 3), True, 1))
    assert model.fc.weight.shape == (2, 2048)


@pytest.mark.parametrize("size", [28, 64])
def test_small_image_resnets_keep_pytorch_default_init(size):
    """MedMNIST's models.py leaves PyTorch's default conv init, kaiming_uniform(a=sqrt(5)):
    |w| <= 1/sqrt(fan_in). torchvision's kaiming_normal(fan_out) would break the bound."""
    torch.manual_seed(0)
    model = build_model("resnet18", 1, 2, size)
    assert isinstance(model.maxpool, nn.Identity) and model.conv1.stride == (1, 1)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
            assert m.weight.abs().max() <= 1 / math.sqrt(fan_in) + 1e-7
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)


def test_resnet_at_224_is_torchvisions_imagenet_resnet():
    torch.manual_seed(0)
    ours = resnet18(3, 5, size=224)
    torch.manual_seed(0)
    ref = torchvision.models.resnet18(weights=None, num_classes=5)
    a, b = ours.state_dict(), ref.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # same layers, same init
    grey = build_model("resnet18", 1, 2, 224).eval()
    assert grey.conv1.kernel_size == (7, 7) and grey.conv1.stride == (2, 2) and grey.conv1.in_channels == 1
    assert isinstance(grey.maxpool, nn.MaxPool2d)
    with torch.no_grad():
        assert grey(torch.randn(1, 1, 224, 224)).shape == (1, 2)
    assert isinstance(build_model("resnet50", 3, 4, 128).maxpool, nn.MaxPool2d)
    assert isinstance(build_model("resnet18", 3, 4, 64).maxpool, nn.Identity)


def test_mac_counter_on_known_layers():
    conv = nn.Conv2d(3, 8, kernel_size=3, padding=1)
    assert count_macs(conv, (3, 10, 10)) == 10 * 10 * 8 * 3 * 9
    strided = nn.Conv2d(4, 6, kernel_size=3, stride=2, padding=1, groups=2)
    assert count_macs(strided, (4, 8, 8)) == 4 * 4 * 6 * 2 * 9
    lin = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
    assert count_macs(lin, (3, 2, 2)) == 60
    net = SimpleCNN(1, 2, widths=(4,), batch_norm=False)  # conv 28x28x4x9 + linear 4x2
    assert count_macs(net, (1, 28, 28)) == 28 * 28 * 4 * 9 + 8


def test_resnet18_macs_match_hand_count():
    """Conv MACs = H_out * W_out * C_out * C_in * k * k, summed over MedMNIST's ResNet-18 at 28 px."""
    out_size = {64: 28, 128: 14, 256: 7, 512: 4}  # feature map side per stage
    total, c_in = 28 * 28 * 64 * 1 * 9, 64  # stem
    for planes in (64, 128, 256, 512):
        hw = out_size[planes] ** 2
        total += hw * planes * c_in * 9 + 3 * hw * planes * planes * 9  # 2 blocks x 2 convs
        if c_in != planes:
            total += hw * planes * c_in  # 1x1 shortcut
        c_in = planes
    total += 512 * 2  # linear
    assert count_macs(resnet18(1, 2), (1, 28, 28)) == total == 455_796_736


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError, match="valid choices: .*resnet18"):
        build_model("resnet19", 1, 2)


def test_count_macs_keeps_training_mode():
    model = SimpleCNN().train()
    count_macs(model, (1, 28, 28))
    assert model.training


@pytest.mark.parametrize("name", ["simplecnn", "compactresnet", "resnet18"])
def test_count_macs_equals_torch_flop_counter(name):
    """Our hook-based MAC count against PyTorch's FlopCounterMode (2 FLOPs per multiply-add,
    convolutions and matrix products only, as our counter)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model(name, 3, 5, 28).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, 28, 28))
    flops = sum(v for op, v in counter.get_flop_counts()["Global"].items()
                if "conv" in str(op) or "mm" in str(op) or "addmm" in str(op))
    assert count_macs(model, (3, 28, 28)) == flops // 2
