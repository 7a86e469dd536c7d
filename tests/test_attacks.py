"""Sanity of the gradient attacks on a tiny classifier fitted here in a few seconds."""

from __future__ import annotations

import pytest
import torch
from medadv import ConfigError, DataError
from medadv.attacks import apgd, fgsm, ifgsm, margin_loss, pgd, predict
from medadv.attacks.gradient import _apgd_checkpoints
from medadv.models.inference import eval_mode
from torch import nn

SIZE = 16


def _images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy grey images; positives carry a faint bright square in the centre."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = 0.4 + 0.1 * torch.randn(n, 1, SIZE, SIZE, generator=gen)
    x[y == 1, :, 6:10, 6:10] += 0.25
    return x.clamp(0, 1), y


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Dropout(0.1),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.ReLU(),
        )
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).amax(dim=(2, 3)))


@pytest.fixture(scope="module")
def trained() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = TinyNet()
    x, y = _images(256, seed=1)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(60):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    xt, yt = _images(64, seed=2)
    assert (predict(model, xt) == yt).float().mean() > 0.9
    return model, xt, yt


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((predict(model, x) == y).float().mean())


def _bright_model() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """The docstring's two-class model (class 1 when the mean grey level is above 0.5) and two images either side."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.stack([-torch.ones(16), torch.ones(16)]))
        model[1].bias.copy_(torch.tensor([8.0, -8.0]))
    return model, torch.stack([torch.full((1, 4, 4), 0.45), torch.full((1, 4, 4), 0.55)]), torch.tensor([0, 1])


ATTACKS = {
    "fgsm": lambda m, x, y, eps, **kw: fgsm(m, x, y, eps),
    "pgd": lambda m, x, y, eps, **kw: pgd(
        m, x, y, eps, 0.025, kw.get("steps", 4), norm=kw.get("norm", "linf"), generator=torch.Generator().manual_seed(0)
    ),
    "apgd": lambda m, x, y, eps, **kw: apgd(
        m, x, y, eps, steps=kw.get("steps", 4), norm=kw.get("norm", "linf"), generator=torch.Generator().manual_seed(0)
    ),
    "ifgsm": lambda m, x, y, eps, **kw: ifgsm(m, x, y, eps=eps, steps=kw.get("steps", 4)),
}


@pytest.mark.parametrize("name", ATTACKS)
def test_budgets_outside_0_1_and_vector_budgets_are_refused(name: str) -> None:
    model, x, y = _bright_model()
    attack = ATTACKS[name]
    for eps in (8, 2.0, 0.0, -0.1):
        with pytest.raises(ConfigError, match=r"eps is .* is outside \(0, 1\]\. .*write 2/255 as 0\.00784"):
            attack(model, x, y, eps)
    with pytest.raises(ConfigError, match=r"eps is nan; expected one finite number"):
        attack(model, x, y, float("nan"))
    with pytest.raises(ConfigError, match=r"eps is a tensor of shape \(2,\); expected one number"):
        attack(model, x, y, torch.tensor([0.1, 0.2]))
    flipped = attack(model, x, y, torch.tensor(0.1))  # a tensor with no dimensions is one number
    assert float((flipped - x).abs().max()) <= 0.1 + 1e-6


def test_an_l2_budget_may_exceed_one_but_must_be_positive() -> None:
    model, x, y = _bright_model()
    x_adv = pgd(model, x, y, 2.0, 0.5, 4, norm="l2", generator=torch.Generator().manual_seed(0))
    assert float((x_adv - x).flatten(1).norm(dim=1).max()) <= 2.0 + 1e-5
    with pytest.raises(ConfigError, match=r"eps is 0; expected a positive L2 budget"):
        pgd(model, x, y, 0.0, 0.5, 4, norm="l2")


@pytest.mark.parametrize("name", ["pgd", "apgd", "ifgsm"])
def test_a_fractional_step_count_is_refused(name: str) -> None:
    model, x, y = _bright_model()
    with pytest.raises(ConfigError, match=r"steps is 2\.5; expected a whole number of at least 1"):
        ATTACKS[name](model, x, y, 0.1, steps=2.5)


@pytest.mark.parametrize("name", ATTACKS)
def test_labels_must_be_integers_of_the_models_classes(name: str) -> None:
    """Labels shaped (N, 1) were taken as one-class soft targets: the toy model then flipped 0 of 2 images."""
    model, x, y = _bright_model()
    attack = ATTACKS[name]
    assert (model(attack(model, x, y, 0.1)).argmax(1) != y).sum() == 2  # both flipped with proper labels
    with pytest.raises(DataError, match=r"y has shape \(2, 1\) .* labels are \(2,\) integers \(use y\.squeeze\(1\)"):
        attack(model, x, y[:, None], 0.1)
    with pytest.raises(DataError, match=r"y has dtype torch\.float32; expected integer class labels"):
        attack(model, x, y.float(), 0.1)
    with pytest.raises(DataError, match=r"y holds label 2, but the model returns 2 logits \(labels 0 to 1\)"):
        attack(model, x, torch.tensor([0, 2]), 0.1)
    with pytest.raises(DataError, match=r"y holds label -1"):
        attack(model, x, torch.tensor([-1, 1]), 0.1)


def test_soft_targets_must_cover_the_models_classes() -> None:
    model, x, y = _bright_model()
    soft = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    assert pgd(model, x, soft, 0.1, 0.025, 4, generator=torch.Generator().manual_seed(0)).shape == x.shape
    with pytest.raises(DataError, match=r"y has shape \(2, 3\), but the model returns 2 logits"):
        pgd(model, x, torch.full((2, 3), 1 / 3), 0.1, 0.025, 4)


def test_nan_pixels_are_refused() -> None:
    model, x, y = _bright_model()
    x = x.clone()
    x[0, 0, 1, 1] = float("nan")
    for name in ATTACKS:
        with pytest.raises(DataError, match=r"x holds 1 NaN or infinite pixel\(s\)"):
            ATTACKS[name](model, x, y, 0.1)


@pytest.mark.parametrize("norm,eps", [("linf", 8 / 255), ("l2", 0.5)])
def test_pgd_stays_in_ball_and_unit_range(trained, norm, eps):
    model, x, y = trained
    x_adv = pgd(
        model, x, y, eps, alpha=eps / 4, steps=6, norm=norm, restarts=2, generator=torch.Generator().manual_seed(0)
    )
    delta = (x_adv - x).flatten(1)
    size = delta.abs().amax(dim=1) if norm == "linf" else delta.norm(dim=1)
    assert float(size.max()) <= eps + 1e-5
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    assert float(size.max()) > 0.5 * eps  # it did move


@pytest.mark.parametrize("norm,eps,loss", [("linf", 8 / 255, "ce"), ("linf", 8 / 255, "margin"), ("l2", 0.5, "margin")])
def test_apgd_stays_in_ball_and_unit_range(trained, norm, eps, loss):
    model, x, y = trained
    x_adv = apgd(model, x, y, eps, steps=12, norm=norm, loss=loss, generator=torch.Generator().manual_seed(0))
    delta = (x_adv - x).flatten(1)
    size = delta.abs().amax(dim=1) if norm == "linf" else delta.norm(dim=1)
    assert float(size.max()) <= eps + 1e-5
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0


def test_fgsm_and_ifgsm_within_eps(trained):
    model, x, y = trained
    for x_adv in (fgsm(model, x, y, 0.03), ifgsm(model, x, eps=0.03, steps=5)):
        assert float((x_adv - x).abs().max()) <= 0.03 + 1e-6
        assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0


def test_attack_strength_ordering(trained):
    """PGD fools the model at least as often as FGSM at equal eps; more eps fools more; APGD is as strong as PGD."""
    model, x, y = trained
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    clean = _accuracy(model, x, y)
    accs = {}
    for eps in (0.05, 0.1):
        accs["fgsm", eps] = _accuracy(model, fgsm(model, x, y, eps), y)
        accs["pgd", eps] = _accuracy(model, pgd(model, x, y, eps, eps / 4, 10, generator=gen()), y)
        accs["apgd", eps] = _accuracy(model, apgd(model, x, y, eps, steps=10, loss="margin", generator=gen()), y)
    for eps in (0.05, 0.1):
        assert accs["pgd", eps] <= accs["fgsm", eps] <= clean
        assert accs["apgd", eps] <= accs["fgsm", eps]
    assert accs["pgd", 0.1] <= accs["pgd", 0.05]
    assert accs["pgd", 0.1] < clean - 0.5  # the attack really bites on this model


def test_restarts_keep_the_best_per_sample(trained):
    model, x, y = trained
    eps = 0.05
    one = pgd(model, x, y, eps, eps / 4, 4, restarts=1, generator=torch.Generator().manual_seed(5))
    three = pgd(model, x, y, eps, eps / 4, 4, restarts=3, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        logits_one, logits_three = model.eval()(one), model(three)
    fooled_one, fooled_three = logits_one.argmax(1) != y, logits_three.argmax(1) != y
    assert 0 < int(fooled_one.sum()) < len(y)
    # the first run of `three` is `one`: every image it fooled stays fooled, and no image's loss goes down
    assert bool((fooled_three | ~fooled_one).all())
    loss_one = nn.functional.cross_entropy(logits_one, y, reduction="none")
    loss_three = nn.functional.cross_entropy(logits_three, y, reduction="none")
    assert bool((loss_three >= loss_one - 1e-5).all())


def test_early_stop_gives_the_same_accuracy_for_less_work(trained):
    model, x, y = trained
    seen = []
    hook = model.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    try:
        full = pgd(model, x, y, 0.1, 0.025, 8, generator=torch.Generator().manual_seed(4))
        n_full = sum(seen)
        seen.clear()
        early = pgd(model, x, y, 0.1, 0.025, 8, generator=torch.Generator().manual_seed(4), early_stop=True)
        n_early = sum(seen)
    finally:
        hook.remove()
    assert _accuracy(model, early, y) == _accuracy(model, full, y) < 0.5
    assert n_full == 8 * len(y) and n_early < 0.8 * n_full
    assert float((early - x).abs().max()) <= 0.1 + 1e-6


def test_deterministic_given_generator(trained):
    model, x, y = trained
    a = pgd(model, x, y, 0.03, 0.01, 3, norm="l2", generator=torch.Generator().manual_seed(11))
    b = pgd(model, x, y, 0.03, 0.01, 3, norm="l2", generator=torch.Generator().manual_seed(11))
    c = pgd(model, x, y, 0.03, 0.01, 3, norm="l2", generator=torch.Generator().manual_seed(12))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_training_mode_restored_and_no_param_grads(trained):
    model, x, y = trained
    model.train()
    model.features[3].eval()  # a submodule in its own mode stays so
    seen = []
    hook = model.features[1].register_forward_hook(lambda m, i, o: seen.append(m.training))
    try:
        pgd(model, x[:8], y[:8], 0.03, 0.01, 2)
        apgd(model, x[:8], y[:8], 0.03, steps=3)
        fgsm(model, x[:8], y[:8], 0.03)
    finally:
        hook.remove()
    assert seen and not any(seen)  # eval mode during the attack
    assert model.training and model.features[1].training and not model.features[3].training
    assert all(p.grad is None for p in model.parameters())
    model.eval()


def test_soft_targets_and_scalar_losses(trained):
    """TRADES-style use: soft targets with a mean KL loss; the attack raises the KL to the clean prediction."""
    model, x, y = trained
    with torch.no_grad():
        p_clean = torch.softmax(model.eval()(x), dim=1)

    def kl(logits: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        return nn.functional.kl_div(torch.log_softmax(logits, dim=1), p, reduction="batchmean")

    eps = 0.05
    x_adv = pgd(model, x, p_clean, eps, eps / 4, 5, loss_fn=kl, generator=torch.Generator().manual_seed(0))
    x_noise = (x + eps * torch.randn(x.shape, generator=torch.Generator().manual_seed(1)).sign()).clamp(0, 1)
    assert float((x_adv - x).abs().max()) <= eps + 1e-6
    with torch.no_grad():
        assert float(kl(model(x_adv), p_clean)) > 5 * float(kl(model(x_noise), p_clean))


def test_margin_loss_values():
    logits = torch.tensor([[2.0, -1.0], [0.5, 1.5], [0.0, 3.0, 1.0]][:2])
    assert torch.allclose(margin_loss(logits, torch.tensor([0, 0])), torch.tensor([-3.0, 1.0]))
    three = torch.tensor([[0.0, 3.0, 1.0]])
    assert torch.allclose(margin_loss(three, torch.tensor([1])), torch.tensor([-2.0]))


def test_apgd_checkpoints_follow_the_paper():
    # p = 0, 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99 (Croce & Hein 2020, Sec. 3.2)
    assert _apgd_checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]


def test_bad_inputs_are_named(trained):
    model, x, y = trained
    with pytest.raises(DataError, match="x spans"):
        pgd(model, x * 3, y, 0.1, 0.01, 2)
    with pytest.raises(DataError, match="y has shape"):
        fgsm(model, x, y[:3], 0.1)
    with pytest.raises(ConfigError, match="norm"):
        pgd(model, x, y, 0.1, 0.01, 2, norm="l1")
    with pytest.raises(ConfigError, match="eps"):
        fgsm(model, x, y, -0.1)
    with pytest.raises(ConfigError, match="random_start"):
        pgd(model, x, y, 0.1, 0.01, 2, random_start=False, restarts=2)
    with pytest.raises(ConfigError, match="loss_fn returned"):
        pgd(model, x, y, 0.1, 0.01, 2, loss_fn=lambda z, t: z)


def test_eval_mode_restores_on_error(trained):
    model, _, _ = trained
    model.train()
    with pytest.raises(RuntimeError), eval_mode(model):
        raise RuntimeError("boom")
    assert model.training
    model.eval()


def test_robustness_tables(trained):
    from medadv.attacks.ensemble import evaluate_models
    from medadv.attacks.plots import attack_examples_figure, corruption_curves_figure, robustness_curves_figure
    from medadv.attacks.robustness import AttackConfig, attack_examples

    model, x, y = trained
    x, y = x[:24], y[:24]
    config = AttackConfig(
        linf_eps=(0.02, 0.1),
        l2_eps=(0.5,),
        steps=3,
        headline_linf_eps=0.1,
        headline_l2_eps=0.5,
        apgd_steps=3,
        ifgsm_steps=3,
        corruptions=("contrast", "gaussian_noise"),
        severities=(1, 5),
        square_queries=5,
        black_box_budgets="headline",
        transfer_from=("vgg_rtda",),
        check_images=6,
        check_steps=4,
    )
    models = {"vgg_erm": (model, "erm"), "vgg_rtda": (model, "rtda")}
    result = evaluate_models(models, x, y, config, torch.device("cpu"), seed=0)
    # clean, FGSM x 2, PGD x 3, APGD x 2, iterative FGSM x 2, Square at the two headline budgets; the transfer attack
    # (crafted on vgg_rtda) at the two headline budgets for vgg_erm only
    assert len(result.curves) == 2 * (1 + 2 + 2 + 1 + 2 + 1 + 1 + 2) + 2
    # paper 004's 0.1 is a step of 0.1 grey level: 3 steps reach 0.3/255; the 0.1 ball (25.5/255) is the labelled extra
    budgets = result.curves.drop_duplicates("attack").set_index("attack")["eps"]
    assert budgets["ifgsm"] == pytest.approx(3 * 0.1 / 255) and budgets["ifgsm_extra"] == pytest.approx(0.1)
    assert {"ifgsm_accuracy", "ifgsm_extra_accuracy"} <= set(result.by_recipe.columns)
    assert len(result.corruptions) == 2 * 2 * 2
    row = result.by_recipe.set_index("model").loc["vgg_erm"]
    assert row["clean_accuracy"] == pytest.approx(_accuracy(model, x, y))
    assert row["pgd_linf_accuracy"] <= row["fgsm_linf_accuracy"] <= row["clean_accuracy"]
    assert row["pgd_linf_accuracy"] < row["clean_accuracy"]
    # the same seeds for every model: identical models give identical rows
    numbers = result.by_recipe.drop(columns=["model", "recipe"])
    assert numbers.iloc[0].equals(numbers.iloc[1])
    fig = robustness_curves_figure(result.curves)
    assert [len(ax.lines) for ax in fig.axes[:2]] == [3, 3]  # two models and the constant classifier's 0.5
    assert all(list(ax.lines[-1].get_ydata()) == [0.5, 0.5] for ax in fig.axes[:2])
    assert len(corruption_curves_figure(result.corruptions).axes[0].lines) == 3
    # balanced accuracy beside the plain one, and the constant classifier's values, on every row
    y_np = y.numpy()
    clean = result.curves[(result.curves["attack"] == "clean") & (result.curves["model"] == "vgg_erm")].iloc[0]
    correct = (predict(model, x) == y).numpy()
    assert clean["sensitivity"] == pytest.approx(correct[y_np == 1].mean())
    assert clean["balanced_accuracy"] == pytest.approx((correct[y_np == 1].mean() + correct[y_np == 0].mean()) / 2)
    assert (result.curves["constant_accuracy"] == max(y_np.mean(), 1 - y_np.mean())).all()
    assert (result.curves["constant_balanced_accuracy"] == 0.5).all()
    assert row["clean_balanced_accuracy"] == pytest.approx(clean["balanced_accuracy"])
    assert {"balanced_accuracy", "sensitivity", "specificity"} <= set(result.corruptions.columns)
    ex = attack_examples(model, x, y, config.pgd_attack(0.1, "linf"), 2, torch.device("cpu"), seed=0)
    assert set(ex["labels"].tolist()) == {0, 1}
    assert len(attack_examples_figure(**ex, attack="PGD").axes) == 6
