"""Issue 23's training levers: weight averaging (--ema), flip TTA in validation (--tta), the alternating flip;
known answers for the arithmetic, and resume stays exact with them."""
import json

import pytest
import torch
import torch.nn.functional as F

from fer_core.checkpoint import load_model, read_checkpoint
from fer_core.preprocess import Preprocess, fit_normalization
from fer_core.steps import ema_decay, ema_update, evaluate_tensors
from fer_core.train import TrainConfig, train


def test_ema_decay_warms_up_then_holds():
    assert ema_decay(0, 0.999) == pytest.approx(0.1)  # (1 + 0) / (10 + 0)
    assert ema_decay(90, 0.999) == pytest.approx(0.91)
    assert ema_decay(10_000, 0.999) == 0.999 and ema_decay(10_000, 0.5) == 0.5


def test_ema_equals_the_closed_form_after_k_steps():
    """Weights set by hand to w_1..w_k: ema_k = d^k w_0 + sum_i (1 - d) d^(k - i) w_i, for the weights and the
    batch-norm running statistics; the step counter buffer is copied."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    ema = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    ema.load_state_dict(model.state_dict())
    w0 = {k: v.clone() for k, v in model.state_dict().items()}
    d, k, seq = 0.8, 5, []
    for i in range(1, k + 1):
        with torch.no_grad():
            for name, t in model.state_dict().items():
                t.copy_(torch.full_like(t, i) if t.is_floating_point() else torch.tensor(i))
        seq.append({n: t.clone() for n, t in model.state_dict().items()})
        ema_update(ema, model, d)
    for name, t in ema.state_dict().items():
        if not t.is_floating_point():
            assert t.item() == k  # num_batches_tracked: copied
            continue
        want = d ** k * w0[name] + sum((1 - d) * d ** (k - i) * seq[i - 1][name] for i in range(1, k + 1))
        assert torch.allclose(t, want, atol=1e-6), name


class HalfReader(torch.nn.Module):
    """Logits from the mean brightness of the left and the right half: class 0 = left, class 1 = right."""

    def forward(self, x):  # (B, 1, H, W) -> (B, 7)
        w = x.shape[-1] // 2
        left, right = x[..., :w].mean((1, 2, 3)), x[..., w:].mean((1, 2, 3))
        return torch.stack([left * 4, right * 4, *[torch.zeros_like(left)] * 5], 1)


def test_flip_tta_averages_each_face_with_its_mirror():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (10, 1, 48, 48), generator=g, dtype=torch.uint8)
    x[:5, ..., :24] = 250  # bright left half: class 0 alone, a tie of 0 and 1 with the mirror
    y = torch.zeros(10, dtype=torch.long)
    prep = Preprocess(fit_normalization(x[:, 0].numpy(), "none"))
    xb = prep.normalize(x.float() / 255)
    m = HalfReader()
    p = (F.softmax(m(xb), 1) + F.softmax(m(xb.flip(-1)), 1)) / 2
    want_loss, want_acc = F.nll_loss(p.log(), y).item(), (p.argmax(1) == y).float().mean().item()
    loss, acc = evaluate_tensors(m, x, y, prep, 4, torch.device("cpu"), False, tta=True)
    assert loss == pytest.approx(want_loss, rel=1e-5) and acc == pytest.approx(want_acc)
    plain_loss, _ = evaluate_tensors(m, x, y, prep, 4, torch.device("cpu"), False)
    assert plain_loss == pytest.approx(F.cross_entropy(m(xb), y).item(), rel=1e-5) and plain_loss != loss


def _cfg(data, **kw):
    return TrainConfig(data=str(data), model="mini_cnn", model_args={"width": 8}, epochs=4, batch_size=32,
                       lr=0.01, optimizer="sgd", schedule="onecycle", augment=True, normalize="global", device="cpu",
                       seed=0, max_train_samples=200, ema=0.9, tta=True, **kw)


def test_ema_run_saves_the_average_and_resumes_exactly(synth_npz, tmp_path):
    full = train(_cfg(synth_npz), out_dir=str(tmp_path), run_dir="full")
    part = train(_cfg(synth_npz), out_dir=str(tmp_path), run_dir="part", max_epochs_this_call=2)
    train(_cfg(synth_npz), run_dir=str(part), resume=True)
    ma = [json.loads(l) for l in (full / "metrics.jsonl").read_text().splitlines()]
    mb = [json.loads(l) for l in (part / "metrics.jsonl").read_text().splitlines()]
    assert [m["val_acc"] for m in ma] == [m["val_acc"] for m in mb] and len(ma) == 4
    a, b = read_checkpoint(full / "last.pt"), read_checkpoint(part / "last.pt")
    for key in ("state_dict", "train_state_dict"):
        assert all(torch.allclose(a[key][k].float(), b[key][k].float(), atol=1e-5) for k in a[key]), key
    # the saved model is the average, not the trained weights; and it is what was scored
    assert any(not torch.equal(a["state_dict"][k], a["train_state_dict"][k]) for k in a["state_dict"])
    model, prep = load_model(full / "best.pt")
    assert read_checkpoint(full / "best.pt")["train_config"]["ema"] == 0.9


def test_alternating_flip_mirrors_each_face_every_other_epoch():
    from fer_core.preprocess import AugmentConfig, augment_batch
    from fer_core.steps import alternating_flips

    f0, f1, f2 = (alternating_flips(1000, 3, e) for e in range(3))
    assert torch.equal(f0, ~f1) and torch.equal(f0, f2) and 400 < int(f0.sum()) < 600
    assert not torch.equal(f0, alternating_flips(1000, 4, 0))  # another seed, other coins
    x = torch.rand(6, 1, 48, 48, generator=torch.Generator().manual_seed(0))
    flips = torch.tensor([True, False, True, True, False, False])
    out = augment_batch(x, AugmentConfig(0.0, 0.0, 0.0, True, 0.0, 0.0), torch.Generator().manual_seed(1),
                        flips=flips)
    want = torch.where(flips[:, None, None, None], x.flip(-1), x)
    assert torch.allclose(out, want, atol=1e-5)


def test_alternating_flip_run_resumes_exactly(synth_npz, tmp_path):
    full = train(_cfg(synth_npz, alternate_flip=True), out_dir=str(tmp_path), run_dir="full")
    part = train(_cfg(synth_npz, alternate_flip=True), out_dir=str(tmp_path), run_dir="part", max_epochs_this_call=1)
    train(_cfg(synth_npz, alternate_flip=True), run_dir=str(part), resume=True)
    a, b = read_checkpoint(full / "last.pt"), read_checkpoint(part / "last.pt")
    assert all(torch.allclose(a["state_dict"][k].float(), b["state_dict"][k].float(), atol=1e-5) for k in a["state_dict"])


def test_bn_lr_splits_the_batch_norm_parameters_into_a_faster_group_without_decay():
    """One SGD step with weight decay: the batch-norm parameters move by bn_lr * lr * grad (no decay term), the
    others by lr * (grad + wd * w): the closed form of plain SGD without momentum history."""
    from fer_core.steps import make_optimizer, train_step

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.Flatten(),
                              torch.nn.LazyLinear(7))
    xb, yb = torch.randn(4, 1, 6, 6), torch.tensor([0, 1, 2, 3])
    net(xb)  # materialise the lazy layer
    cfg = TrainConfig(data="x", optimizer="sgd", lr=0.1, weight_decay=0.01, momentum=0.5, bn_lr=8.0)
    opt = make_optimizer(cfg, net)
    assert [g["lr_mult"] for g in opt.param_groups] == [1.0, 8.0]
    assert [g["weight_decay"] for g in opt.param_groups] == [0.01, 0.0]
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    net.train()
    logits = net(xb)
    loss = F.cross_entropy(logits, yb)
    grads = dict(zip([n for n, _ in net.named_parameters()], torch.autograd.grad(loss, list(net.parameters()))))
    train_step(net, opt, xb, yb, lr=0.1, label_smoothing=0.0, amp=False)
    # Nesterov's first step: d = g + wd*w; buf = d; update = d + momentum * buf = (1 + momentum) * d
    for n, p in net.named_parameters():
        bn = n.startswith("1.")
        d = grads[n] + (0.0 if bn else 0.01) * before[n]
        want = before[n] - (0.8 if bn else 0.1) * 1.5 * d
        assert torch.allclose(p.detach(), want, atol=1e-6), n
    # bn_lr 1 keeps the single group of earlier runs (old last.pt optimizer states still load)
    assert len(make_optimizer(TrainConfig(data="x", optimizer="sgd"), net).param_groups) == 1


def test_bn_lr_run_resumes_exactly(synth_npz, tmp_path):
    full = train(_cfg(synth_npz, bn_lr=4.0), out_dir=str(tmp_path), run_dir="full")
    part = train(_cfg(synth_npz, bn_lr=4.0), out_dir=str(tmp_path), run_dir="part", max_epochs_this_call=1)
    train(_cfg(synth_npz, bn_lr=4.0), run_dir=str(part), resume=True)
    a, b = read_checkpoint(full / "last.pt"), read_checkpoint(part / "last.pt")
    assert all(torch.allclose(a["state_dict"][k].float(), b["state_dict"][k].float(), atol=1e-5) for k in a["state_dict"])
    assert read_checkpoint(full / "best.pt")["train_config"]["bn_lr"] == 4.0


def test_whitening_filters_decorrelate_the_faces_patches():
    """The 9 whitening filters' responses to the faces' 3x3 patches have (nearly) identity covariance, their
    negatives follow, and they land in the first convolution (the rest of it keeps its init)."""
    import numpy as np

    from fer_core.models import create_model
    from fer_core.whiten import patch_whitening, whiten_first_conv
    from tests.conftest import synthetic_faces

    x, _ = synthetic_faces(300, 0)
    prep = Preprocess(fit_normalization(x, "global"))
    w = patch_whitening(x, prep, eps=0.0)
    assert w.shape == (18, 1, 3, 3) and torch.equal(w[9:], -w[:9])
    xb = prep.normalize(torch.from_numpy(x)[:, None].float() / 255)
    r = F.conv2d(xb.double(), w[:9].double()).permute(1, 0, 2, 3).reshape(9, -1)  # (9, responses)
    r = r - r.mean(1, keepdim=True)
    cov = r @ r.T / r.shape[1]
    assert torch.allclose(cov, torch.eye(9, dtype=torch.float64), atol=1e-3)
    net = create_model("vgg_bn", width=32)
    before = net.first_conv.weight.detach().clone()
    assert whiten_first_conv(net, w) == 18
    assert torch.equal(net.first_conv.weight[:18], w) and torch.equal(net.first_conv.weight[18:], before[18:])
    with pytest.raises(ValueError, match="whiten-init"):
        whiten_first_conv(net, torch.zeros(18, 1, 5, 5))
    assert np.isfinite(patch_whitening(np.zeros((10, 48, 48), np.uint8), prep).numpy()).all()  # a flat input


def test_whiten_init_run_starts_whitened_and_resumes_exactly(synth_npz, tmp_path):
    from fer_core.checkpoint import read_checkpoint

    def cfg():
        c = _cfg(synth_npz, whiten_init=True)
        c.epochs = 2
        return c

    zero = train(cfg(), out_dir=str(tmp_path), run_dir="zero", max_epochs_this_call=0)
    w0 = read_checkpoint(zero / "last.pt")["train_state_dict"]["features.0.weight"]
    from fer_core.data import load_split
    from fer_core.trainset import training_faces
    from fer_core.whiten import patch_whitening

    faces = training_faces(cfg(), load_split(str(synth_npz), "train"))
    prep = Preprocess(fit_normalization(faces.x, "global"))
    assert torch.allclose(w0.float(), patch_whitening(faces.x, prep)[:8], atol=1e-5)  # mini_cnn width 8: 8 filters
    full = train(cfg(), out_dir=str(tmp_path), run_dir="full")
    part = train(cfg(), out_dir=str(tmp_path), run_dir="part", max_epochs_this_call=1)
    train(cfg(), run_dir=str(part), resume=True)
    a, b = read_checkpoint(full / "last.pt"), read_checkpoint(part / "last.pt")
    assert all(torch.allclose(a["state_dict"][k].float(), b["state_dict"][k].float(), atol=1e-5) for k in a["state_dict"])
