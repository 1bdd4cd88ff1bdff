#!/usr/bin/env python3
"""Writes the PyTorch reference fixtures that Tests/KernelsTests/PyTorchFixtureTests.swift checks
Kernels against.

Made with torch 2.15.0 (CPU). Regenerate from the repository root with
    /opt/torch-venv/bin/python Scripts/make_fixtures.py
Output is deterministic for a given torch version (fixed seed), so a regenerated file should
diff empty unless PyTorch's semantics changed.

Conventions shared by every file in Tests/KernelsTests/Fixtures/:
  * A tensor is {"shape": [...], "values": [...]} in row-major (NCHW) order.
  * Inputs are random float32 values; they are written as the float64 number equal to the
    float32 value, so Swift's `Float(exactly:)` recovers them bit for bit.
  * References are computed by PyTorch in float64 from those float32 inputs, so they carry no
    float32 rounding of their own: any difference is Kernels' rounding (or a bug).
  * NaN and ±infinity are not JSON numbers; they are written as the strings "nan", "inf", "-inf".
  * Parameters are [height, width] pairs.
"""

import json
import math
import pathlib

import torch
import torch.nn.functional as F

SEED = 20240607
OUT = pathlib.Path(__file__).resolve().parent.parent / "Tests" / "KernelsTests" / "Fixtures"

generator = torch.Generator().manual_seed(SEED)


def uniform(*shape):
    """Random float32 values in [-1, 1), widened to float64 so PyTorch computes exactly on them."""
    return (torch.rand(*shape, generator=generator, dtype=torch.float32) * 2 - 1).double()


def small_integers(*shape, high=3):
    """Float values 0..<high: many exact ties, to pin down which maximum max-pool picks."""
    return torch.randint(0, high, shape, generator=generator).double()


def number(value):
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def tensor(t):
    t = t.detach()
    return {"shape": list(t.shape), "values": [number(v) for v in t.flatten().tolist()]}


def pair(value):
    return list(value) if isinstance(value, (tuple, list)) else [value, value]


def conv2d_case(name, batch, channels, size, filters, kernel, stride=1, padding=0, dilation=1, bias=True):
    kernel = pair(kernel)
    x = uniform(batch, channels, *size).requires_grad_()
    w = uniform(filters, channels, *kernel).requires_grad_()
    b = uniform(filters).requires_grad_() if bias else None
    y = F.conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation)
    dy = uniform(*y.shape)
    y.backward(dy)
    return {
        "name": name, "stride": pair(stride), "padding": pair(padding), "dilation": pair(dilation),
        "input": tensor(x), "weight": tensor(w), "bias": tensor(b) if bias else None,
        "output": tensor(y), "output_gradient": tensor(dy),
        "input_gradient": tensor(x.grad), "weight_gradient": tensor(w.grad),
        # Kernels always returns a bias gradient; without a bias it is still Σ dy per channel.
        "bias_gradient": tensor(b.grad if bias else dy.sum(dim=(0, 2, 3))),
    }


def conv_transpose2d_case(name, batch, in_channels, size, out_channels, kernel, stride=1, padding=0,
                          output_padding=0, dilation=1, bias=True):
    kernel = pair(kernel)
    x = uniform(batch, in_channels, *size).requires_grad_()
    w = uniform(in_channels, out_channels, *kernel).requires_grad_()  # PyTorch's [C_in, C_out, KH, KW]
    b = uniform(out_channels).requires_grad_() if bias else None
    y = F.conv_transpose2d(x, w, b, stride=stride, padding=padding, output_padding=output_padding,
                           dilation=dilation)
    dy = uniform(*y.shape)
    y.backward(dy)
    return {
        "name": name, "stride": pair(stride), "padding": pair(padding),
        "output_padding": pair(output_padding), "dilation": pair(dilation),
        "input": tensor(x), "weight": tensor(w), "bias": tensor(b) if bias else None,
        "output": tensor(y), "output_gradient": tensor(dy),
        "input_gradient": tensor(x.grad), "weight_gradient": tensor(w.grad),
        "bias_gradient": tensor(b.grad if bias else dy.sum(dim=(0, 2, 3))),
    }


def max_pool2d_case(name, x, kernel, stride=None, padding=0, dilation=1, note=None):
    x = x.clone().requires_grad_()
    stride = kernel if stride is None else stride
    y, indices = F.max_pool2d(x, kernel, stride, padding, dilation, return_indices=True)
    # float32 must pick the same indices as float64 (the inputs are float32-exact), or the
    # fixture would depend on the precision PyTorch happened to run in.
    _, indices32 = F.max_pool2d(x.detach().float(), kernel, stride, padding, dilation, return_indices=True)
    assert torch.equal(indices, indices32), name
    # Random (not all-ones) output gradients show which gradient went to which pixel.
    dy = uniform(*y.shape)
    y.backward(dy)
    case = {
        "name": name, "kernel": pair(kernel), "stride": pair(stride), "padding": pair(padding),
        "dilation": pair(dilation), "input": tensor(x), "output": tensor(y),
        "indices": indices.flatten().tolist(), "output_gradient": tensor(dy), "input_gradient": tensor(x.grad),
    }
    if note:
        case["note"] = note
    return case


def unfold_fold_case(name, batch, channels, size, kernel, stride=1, padding=0, dilation=1):
    x = uniform(batch, channels, *size)
    columns = F.unfold(x, kernel, dilation=dilation, padding=padding, stride=stride)
    # fold is checked on independent random columns, not on unfold's output, so a col2im that
    # merely inverted im2col's bookkeeping could not pass by symmetry.
    random_columns = uniform(*columns.shape)
    image = F.fold(random_columns, size, kernel, dilation=dilation, padding=padding, stride=stride)
    return {
        "name": name, "kernel": pair(kernel), "stride": pair(stride), "padding": pair(padding),
        "dilation": pair(dilation), "input": tensor(x), "columns": tensor(columns),
        "fold_columns": tensor(random_columns), "fold_image": tensor(image),
    }


def conv2d_cases():
    return [
        conv2d_case("single-channel 3x3", 1, 1, (5, 5), 1, 3),
        conv2d_case("batch and channels, padded", 2, 3, (7, 6), 4, 3, padding=1),
        conv2d_case("non-square kernel, no bias", 2, 2, (8, 9), 3, (2, 4), padding=(1, 2), bias=False),
        conv2d_case("asymmetric stride", 1, 3, (9, 10), 2, 3, stride=(2, 3), padding=(1, 0)),
        conv2d_case("asymmetric dilation", 2, 2, (10, 9), 3, 3, padding=(2, 1), dilation=(2, 1)),
        conv2d_case("stride larger than kernel", 2, 2, (11, 10), 2, 2, stride=(3, 4)),
        conv2d_case("1x1 stride 1 unpadded", 2, 5, (4, 6), 3, 1),
        conv2d_case("1x1 stride 1 unpadded, no bias", 3, 4, (3, 3), 2, 1, bias=False),
        conv2d_case("1x1 stride 2", 2, 3, (7, 7), 2, 1, stride=2),
        conv2d_case("1x1 padded", 1, 2, (3, 4), 3, 1, padding=(1, 2), bias=False),
        conv2d_case("kernel equals padded input", 2, 2, (5, 4), 3, (7, 6), padding=1),
        conv2d_case("kernel equals input, no bias", 1, 3, (4, 6), 2, (4, 6), bias=False),
        conv2d_case("everything asymmetric", 2, 3, (12, 11), 4, (3, 2), stride=(2, 1), padding=(0, 1),
                    dilation=(1, 3)),
        conv2d_case("one channel many filters, no bias", 3, 1, (6, 8), 5, (5, 3), stride=(1, 2), padding=(2, 0),
                    bias=False),
        conv2d_case("stride, padding and dilation 2", 1, 2, (13, 13), 2, 3, stride=2, padding=2, dilation=2),
    ]


def conv_transpose2d_cases():
    return [
        conv_transpose2d_case("single-channel 3x3", 1, 1, (3, 3), 1, 3),
        conv_transpose2d_case("stride 2 with output padding", 2, 3, (4, 5), 2, 3, stride=2, padding=1,
                              output_padding=1),
        conv_transpose2d_case("asymmetric, no bias", 2, 2, (5, 4), 3, (3, 2), stride=(2, 3), padding=(1, 0),
                              output_padding=(1, 2), bias=False),
        conv_transpose2d_case("dilation", 1, 2, (4, 4), 2, 3, padding=1, dilation=2),
        # PyTorch allows output_padding >= stride as long as it is below the dilation.
        conv_transpose2d_case("output padding at least stride, below dilation", 2, 2, (4, 5), 2, (2, 3),
                              stride=(1, 2), padding=(0, 1), output_padding=(1, 2), dilation=(2, 3)),
        conv_transpose2d_case("stride larger than kernel, no bias", 2, 2, (3, 4), 2, 2, stride=3, bias=False),
        conv_transpose2d_case("1x1 stride 1", 2, 4, (3, 5), 3, 1),
        conv_transpose2d_case("everything asymmetric", 2, 3, (5, 6), 2, (4, 3), stride=(3, 2), padding=(2, 1),
                              output_padding=(2, 0), dilation=(1, 2)),
        conv_transpose2d_case("padding shrinks output to 1x1", 1, 2, (3, 3), 2, 3, padding=2),
    ]


def max_pool2d_cases():
    nan, inf = float("nan"), float("inf")
    # Four 2x2 windows (kernel 2, stride 2): one NaN; two NaNs (PyTorch returns the *later* one,
    # flat index 4, not 1); -inf beside a finite value; all -inf (index of the window's first pixel).
    special = torch.tensor([[[[1.0, nan, 3.0, nan],
                              [nan, 2.0, 0.0, 5.0],
                              [-inf, 0.5, -inf, -inf],
                              [-inf, -inf, -inf, -inf]]]], dtype=torch.float64)
    # Overlapping, padded windows over NaNs and -inf: several windows share each NaN.
    overlapping = uniform(1, 2, 5, 6)
    overlapping[0, 0, 1, 2] = nan
    overlapping[0, 0, 3, 4] = nan
    overlapping[0, 0, 3, 5] = nan
    overlapping[0, 1, 0, :] = -inf
    overlapping[0, 1, 1, 0] = -inf
    # A border window that sees only -inf: its index must be the first in-bounds pixel, not padding.
    border = torch.full((1, 1, 4, 4), -inf, dtype=torch.float64)
    border[0, 0, 2:, 2:] = uniform(2, 2)
    return [
        max_pool2d_case("kernel 2 stride 2", uniform(2, 3, 6, 8), 2),
        max_pool2d_case("kernel 3 stride 2 padding 1", uniform(2, 2, 7, 9), 3, 2, 1),
        max_pool2d_case("overlapping windows with ties", small_integers(1, 2, 6, 6), 3, 1, 1,
                        note="first maximum in scan order wins ties; backward accumulates"),
        max_pool2d_case("asymmetric with ties", small_integers(2, 2, 7, 6), (3, 2), (1, 2), (1, 0), (2, 1)),
        max_pool2d_case("dilation 2 padding 1", uniform(2, 1, 7, 7), 2, 1, 1, 2),
        max_pool2d_case("stride larger than kernel", uniform(1, 2, 8, 10), 2, 3),
        max_pool2d_case("window equals input", small_integers(2, 2, 4, 5, high=2), (4, 5)),
        max_pool2d_case("NaN, two NaNs, -inf", special, 2,
                        note="two NaNs in one window: PyTorch returns the later NaN's index (4)"),
        max_pool2d_case("overlapping NaN and -inf", overlapping, 3, 1, 1),
        max_pool2d_case("all -inf border window", border, 3, 2, 1),
    ]


def unfold_fold_cases():
    return [
        unfold_fold_case("3x3 padding 1", 1, 1, (3, 3), 3, padding=1),
        unfold_fold_case("asymmetric everything", 2, 2, (6, 7), (2, 3), stride=(2, 1), padding=(1, 0),
                         dilation=(1, 2)),
        unfold_fold_case("stride larger than kernel leaves gaps", 1, 3, (8, 7), 2, stride=3),
        unfold_fold_case("dilation 2 padding 2", 2, 1, (5, 6), 3, padding=2, dilation=2),
        unfold_fold_case("1x1 stride 2 padded", 2, 2, (5, 4), 1, stride=2, padding=1),
        unfold_fold_case("kernel equals padded input", 1, 2, (3, 4), (5, 4), padding=(1, 0)),
    ]


# --- Which arguments PyTorch accepts --------------------------------------------------------
# Each case runs one call on tiny zero tensors and records whether PyTorch accepted it (with the
# output shape) or rejected it (with its message). Kernels must reject what PyTorch rejects.

def probe(name, op, call, **arguments):
    case = {"name": name, "op": op, **arguments}
    try:
        result = call()
        output = result[0] if isinstance(result, tuple) else result
        case.update(accepted=True, output_shape=list(output.shape))
    except RuntimeError as error:
        case.update(accepted=False, message=str(error).splitlines()[0])
    return case


def pool_probe(name, input_shape, kernel, stride, padding, dilation):
    call = lambda: F.max_pool2d(torch.zeros(input_shape, dtype=torch.float64), kernel, stride, padding, dilation,
                                return_indices=True)
    return probe(name, "max_pool2d", call, input_shape=input_shape, kernel=pair(kernel), stride=pair(stride),
                 padding=pair(padding), dilation=pair(dilation))


def conv_probe(name, input_shape, weight_shape, stride=1, padding=0, dilation=1, bias_shape=None):
    zeros = lambda shape: torch.zeros(shape, dtype=torch.float64)
    call = lambda: F.conv2d(zeros(input_shape), zeros(weight_shape), zeros(bias_shape) if bias_shape else None,
                            stride=stride, padding=padding, dilation=dilation)
    return probe(name, "conv2d", call, input_shape=input_shape, weight_shape=weight_shape, bias_shape=bias_shape,
                 stride=pair(stride), padding=pair(padding), dilation=pair(dilation))


def transpose_probe(name, input_shape, weight_shape, stride=1, padding=0, output_padding=0, dilation=1):
    zeros = lambda shape: torch.zeros(shape, dtype=torch.float64)
    call = lambda: F.conv_transpose2d(zeros(input_shape), zeros(weight_shape), stride=stride, padding=padding,
                                      output_padding=output_padding, dilation=dilation)
    return probe(name, "conv_transpose2d", call, input_shape=input_shape, weight_shape=weight_shape,
                 stride=pair(stride), padding=pair(padding), output_padding=pair(output_padding),
                 dilation=pair(dilation))


def unfold_probe(name, input_shape, kernel, stride=1, padding=0, dilation=1):
    call = lambda: F.unfold(torch.zeros(input_shape, dtype=torch.float64), kernel, dilation=dilation,
                            padding=padding, stride=stride)
    return probe(name, "unfold", call, input_shape=input_shape, kernel=pair(kernel), stride=pair(stride),
                 padding=pair(padding), dilation=pair(dilation))


def rule_cases():
    x = [1, 1, 8, 8]
    return [
        # Max-pool padding: PyTorch checks pad <= kernel/2 per axis, *not* the dilated
        # (effective) kernel: kernel 3 dilation 2 has effective size 5, yet padding 2 is rejected.
        pool_probe("pool padding half the kernel", x, 3, 1, 1, 1),
        pool_probe("pool padding over half the kernel", x, 3, 1, 2, 1),
        pool_probe("pool padding half the dilated kernel only", x, 3, 1, 2, 2),
        pool_probe("pool kernel 2 padding 1 dilation 3", x, 2, 1, 1, 3),
        pool_probe("pool kernel 2 padding 2 dilation 3", x, 2, 1, 2, 3),
        pool_probe("pool padding checked per axis, accepted", x, (3, 1), 1, (1, 0), 1),
        pool_probe("pool padding checked per axis, rejected", x, (3, 1), 1, (1, 1), 1),
        pool_probe("pool kernel 1 padding 1", x, 1, 1, 1, 1),
        pool_probe("pool zero stride", x, 2, 0, 0, 1),
        pool_probe("pool zero dilation", x, 2, 1, 0, 0),
        pool_probe("pool zero kernel", x, 0, 1, 0, 1),
        pool_probe("pool negative padding", x, 2, 1, -1, 1),
        pool_probe("pool kernel larger than input", x, 9, 1, 0, 1),
        pool_probe("pool kernel equals padded input", x, 9, 1, 4, 1),
        # Every tap of the first window lands in padding; PyTorch returns -inf and an index
        # outside the plane (6 for a 2x2 plane) instead of rejecting it.
        pool_probe("pool window entirely in padding", [1, 1, 2, 2], 2, 1, 1, 3),
        conv_probe("conv zero stride", x, [2, 1, 3, 3], stride=0),
        conv_probe("conv zero dilation", x, [2, 1, 3, 3], dilation=0),
        conv_probe("conv negative padding", x, [2, 1, 3, 3], padding=-1),
        conv_probe("conv kernel larger than input", x, [2, 1, 9, 9]),
        conv_probe("conv dilated kernel larger than input", x, [2, 1, 3, 3], dilation=4),
        conv_probe("conv kernel equals padded input", x, [2, 1, 10, 10], padding=1),
        conv_probe("conv channel mismatch", x, [2, 2, 3, 3]),
        conv_probe("conv wrong bias size", x, [2, 1, 3, 3], bias_shape=[3]),
        conv_probe("conv zero filters", x, [0, 1, 3, 3]),
        conv_probe("conv rank-3 weight", x, [2, 1, 3]),
        transpose_probe("transpose output padding below stride", x, [1, 2, 3, 3], stride=2, output_padding=1),
        transpose_probe("transpose output padding at least stride, below dilation", x, [1, 2, 3, 3],
                        output_padding=1, dilation=2),
        transpose_probe("transpose output padding not below stride or dilation", x, [1, 2, 3, 3], stride=2,
                        output_padding=2, dilation=2),
        transpose_probe("transpose output padding 1 with stride 1 dilation 1", x, [1, 2, 3, 3], output_padding=1),
        transpose_probe("transpose negative output padding", x, [1, 2, 3, 3], stride=2, output_padding=-1),
        transpose_probe("transpose padding leaves no output", [1, 1, 1, 1], [1, 2, 1, 1], padding=1),
        transpose_probe("transpose zero stride", x, [1, 2, 3, 3], stride=0),
        transpose_probe("transpose channel mismatch", x, [2, 2, 3, 3]),
        unfold_probe("unfold zero stride", x, 3, stride=0),
        unfold_probe("unfold kernel larger than input", x, 9),
        unfold_probe("unfold negative padding", x, 3, padding=-1),
        unfold_probe("unfold zero dilation", x, 3, dilation=0),
    ]


def write(name, cases):
    path = OUT / f"{name}.json"
    # Compact separators keep the committed data small; allow_nan=False proves no bare NaN slipped in.
    path.write_text(json.dumps({"torch": torch.__version__, "seed": SEED, "cases": cases},
                               separators=(",", ":"), allow_nan=False) + "\n")
    print(f"{path.relative_to(OUT.parent.parent.parent)}: {len(cases)} cases, {path.stat().st_size} bytes")


if __name__ == "__main__":
    torch.set_num_threads(1)  # single-threaded float64 sums: the same bits on every run
    OUT.mkdir(parents=True, exist_ok=True)
    write("conv2d", conv2d_cases())
    write("conv_transpose2d", conv_transpose2d_cases())
    write("max_pool2d", max_pool2d_cases())
    write("unfold_fold", unfold_fold_cases())
    write("rules", rule_cases())
