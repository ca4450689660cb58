"""helpers._machinery.cuda_graph: the replayed step computes what the eager step computes.

The first tests run everywhere (the schedule, the step's plumbing without a
graph, the fallback); those marked ``cuda`` need an NVIDIA GPU and are skipped
on a CPU, as in CI.
"""

import dataclasses

import pytest
import torch

from helpers import data, records, train
from helpers._machinery import cuda_graph
from tools import search

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU")


@pytest.fixture
def deterministic():
    """cuDNN's default backward kernels add in a varying order, and Adam's first steps turn that rounding
    into differences as large as the lr: tests that compare weights ask for deterministic kernels."""
    before = torch.backends.cudnn.deterministic
    torch.backends.cudnn.deterministic = True
    yield
    torch.backends.cudnn.deterministic = before
ONECYCLE = train.Config(epochs=3, batch_size=128, optimizer="adam", scheduler="onecycle", max_lr=0.02, pct_start=0.3)
ARCH = "c8 c8 p c10 c12 c14 h"  # no dropout: the two runs compared draw no random masks


def test_the_schedule_is_one_cycle_by_its_known_values():
    """OneCycleLR starts at max_lr / 25 with beta1 0.95, peaks at max_lr with beta1 0.85 after 30 %
    of the steps, and ends at max_lr / 25 / 10^4 with beta1 back at 0.95."""
    lrs, beta1s = train.planned_schedule(ONECYCLE, steps_per_epoch=10)
    assert len(lrs) == len(beta1s) == 30
    assert lrs[0] == pytest.approx(0.02 / 25) and beta1s[0] == pytest.approx(0.95)
    peak = lrs.index(max(lrs))
    assert peak == 8 and lrs[peak] == pytest.approx(0.02) and beta1s[peak] == pytest.approx(0.85)
    assert lrs[-1] == pytest.approx(0.02 / 25 / 1e4, rel=1e-6) and beta1s[-1] == pytest.approx(0.95)


def test_a_per_epoch_schedule_changes_the_lr_only_between_epochs():
    config = train.Config(epochs=3, optimizer="adam", lr=0.01, scheduler="step", step_size=1, gamma=0.1)
    lrs, _ = train.planned_schedule(config, steps_per_epoch=4)
    assert lrs == pytest.approx([0.01] * 4 + [0.001] * 4 + [0.0001] * 4)


def graphed_training(model, config, steps_per_epoch, **kwargs) -> cuda_graph.GraphedTraining:
    """As fit makes it: the schedule planned ahead by helpers.train."""
    return cuda_graph.GraphedTraining(model, config, steps_per_epoch,
                                      plan=train.planned_schedule(config, steps_per_epoch), **kwargs)


def _params(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _run(batches, device, how: str, config=ONECYCLE, steps_per_epoch: int = 10) -> tuple[torch.nn.Module, tuple]:
    train.set_seed(1)
    model = search.build(ARCH).to(device)
    if how == "eager":
        optimizer = train.make_optimizer(model, config)
        schedule = train.LrSchedule(optimizer, config, steps_per_epoch)
        out = train.train_one_epoch(model, batches, optimizer, schedule, progress=False)
    else:
        graphed = graphed_training(model, config, steps_per_epoch, capture=how == "graph")
        out = graphed.train_one_epoch(batches)
    return model, out


def _batches(device, n: int = 3, last: int = 0):
    images, labels = data.load_mnist(train=True)
    loader = data.FastLoader(images[:n * 128 + last], labels[:n * 128 + last], 128, device=device)
    return list(loader)


@pytest.mark.parametrize("config", [ONECYCLE, dataclasses.replace(ONECYCLE, optimizer="adamw", weight_decay=0.01),
                                    train.Config(optimizer="adam", lr=0.001, weight_decay=0.01)],
                         ids=["adam-onecycle", "adamw-decay", "adam-l2"])
def test_the_step_without_a_graph_is_the_eager_step(config, mnist_root, smoke):
    """On a CPU: one step of GraphedTraining's own Adam lands on the weights torch.optim.Adam's step gives.
    (Not bit for bit: lr and beta1 become float32 tensors; over many steps Adam amplifies the rounding.)"""
    batches = _batches("cpu", n=1)
    eager, (eager_loss, _) = _run(batches, "cpu", "eager", config)
    plain, (plain_loss, _) = _run(batches, "cpu", "no graph", config)
    assert plain_loss == pytest.approx(eager_loss, rel=1e-6)
    assert torch.allclose(_params(plain), _params(eager), atol=1e-6)
    assert not torch.equal(_params(plain), _params(search.build(ARCH)))  # it did train


def _loader(device, n: int = 3 * 128 + 40, **augment) -> data.FastLoader:
    images, labels = data.load_mnist(train=True)
    return data.FastLoader(images[:n], labels[:n], 128, device=device, seed=1, **augment)


def test_the_planned_batches_are_the_fast_loaders(mnist_root, smoke):
    """The batches the graph makes from its epoch plan: unshuffled, FastLoader's batches; shuffled, every
    image once; with rotation drawn as 0 degrees, the plain images, and otherwise rotated ones."""
    plain = _loader("cpu")
    graphed = graphed_training(search.build(ARCH), ONECYCLE, len(plain), capture=False, loader=plain)
    X, y = graphed.batch_at(torch.arange(128))
    X_loader, y_loader = next(iter(plain))
    assert torch.equal(y, y_loader) and torch.allclose(X, X_loader, atol=1e-6)

    rotated = _loader("cpu", shuffle=True, degrees=30)
    graphed = graphed_training(search.build(ARCH), ONECYCLE, len(rotated), capture=False, loader=rotated)
    graphed.plan_epoch()
    everything = torch.arange(len(rotated.labels))
    _, labels = graphed.batch_at(everything)
    assert torch.equal(labels.sort().values, rotated.labels.sort().values)
    assert not torch.equal(graphed.order, everything)  # shuffled
    X_turned, _ = graphed.batch_at(torch.arange(128))
    graphed.uniform.fill_(0.5)  # the middle of each range: 0 degrees, no shift, zoom 1
    X_still, y_still = graphed.batch_at(torch.arange(128))
    unrotated = data.normalize(rotated.images[graphed.order[:128]].float().div_(255))
    assert torch.allclose(X_still, unrotated, atol=1e-6) and not torch.allclose(X_turned, unrotated, atol=0.1)


def test_an_epoch_from_the_plan_trains_as_the_loader_loop(mnist_root, smoke):
    """Unshuffled and unaugmented, both ways see the same batches in the same order: the same weights."""
    runs = []
    for planned in (True, False):
        train.set_seed(1)
        model, loader = search.build(ARCH), _loader("cpu")
        graphed = graphed_training(model, ONECYCLE, len(loader), capture=False,
                                             loader=loader if planned else None)
        runs.append((graphed.train_one_epoch(loader), _params(model)))
    assert runs[0][0] == runs[1][0] and torch.equal(runs[0][1], runs[1][1])


def test_the_schedule_ends_with_a_clear_error(mnist_root, smoke):
    graphed = graphed_training(search.build(ARCH), dataclasses.replace(ONECYCLE, epochs=1), 2, capture=False)
    graphed.train_one_epoch(_batches("cpu", n=2))
    with pytest.raises(RuntimeError, match="computed for 2 steps"):
        graphed.train_one_epoch(_batches("cpu", n=1))


def test_no_graph_where_none_can_run():
    assert "NVIDIA" in cuda_graph.unsupported_reason(torch.device("cpu"), ONECYCLE)
    assert "'sgd'" in cuda_graph.unsupported_reason(torch.device("cuda"), train.Config(optimizer="sgd"))
    assert cuda_graph.unsupported_reason(torch.device("cuda"), ONECYCLE) is None


@pytest.mark.slow
def test_fit_on_a_cpu_trains_eagerly(mnist_root, smoke):
    history = train.fit(search.build(ARCH), dataclasses.replace(ONECYCLE, epochs=1), device=torch.device("cpu"),
                        progress=False, quiet=True)
    assert "CUDA graph" not in history.device


@cuda
def test_fast_loader_makes_the_same_batches_on_the_gpu(mnist_root, smoke):
    for (X_cpu, y_cpu), (X_gpu, y_gpu) in zip(_batches("cpu"), _batches("cuda")):
        assert X_gpu.is_cuda and torch.equal(y_gpu.cpu(), y_cpu)
        assert torch.allclose(X_gpu.cpu(), X_cpu, atol=1e-6)


@cuda
def test_the_replayed_graph_is_the_eager_step_on_the_gpu(mnist_root, smoke, deterministic):
    """A replayed step lands where torch.optim.Adam's eager step lands; then a smaller batch (run eagerly on
    the graph's tensors) and a replay again land where the same code without a graph lands."""
    one = _batches("cuda", n=1)
    replayed, (replayed_loss, _) = _run(one, "cuda", "graph")
    eager, (eager_loss, _) = _run(one, "cuda", "eager")
    assert replayed_loss == pytest.approx(eager_loss, rel=1e-6)
    assert torch.allclose(_params(replayed), _params(eager), atol=1e-6)
    assert not torch.allclose(_params(replayed), _params(search.build(ARCH).cuda()), atol=1e-6)  # it did train
    three = _batches("cuda", n=1, last=40) + _batches("cuda", n=1)
    replayed, (replayed_loss, replayed_acc) = _run(three, "cuda", "graph")
    plain, (plain_loss, plain_acc) = _run(three, "cuda", "no graph")
    assert replayed_loss == pytest.approx(plain_loss, rel=1e-5) and replayed_acc == plain_acc
    assert torch.allclose(_params(replayed), _params(plain), atol=1e-5)


@cuda
def test_the_batches_made_inside_the_graph_train_as_without_it(mnist_root, smoke, deterministic):
    """Shuffled and rotated, four steps (three replays and the smaller batch): with and without the graph,
    the same plan (same seed) and the same weights."""
    runs = []
    for capture in (True, False):
        train.set_seed(1)
        model, loader = search.build(ARCH).cuda(), _loader("cuda", shuffle=True, degrees=7)
        graphed = graphed_training(model, ONECYCLE, len(loader), capture=capture, loader=loader)
        assert graphed.loader is loader  # the batches are made from the plan
        runs.append((graphed.train_one_epoch(loader), _params(model)))
    (loss, acc), (plain_loss, plain_acc) = runs[0][0], runs[1][0]
    assert loss == pytest.approx(plain_loss, rel=1e-5) and acc == plain_acc
    assert torch.allclose(runs[0][1], runs[1][1], atol=1e-5)


@cuda
def test_fit_on_the_gpu_uses_the_graph_and_learns(mnist_root, smoke):
    """fit turns the graph on by itself on CUDA and off when asked; both learn (chance is 10 %). Sixteen
    smoke steps are too few to compare the two runs' accuracies (they differed by 9 points on an H100):
    the weight-by-weight tests above compare the steps themselves."""
    config = dataclasses.replace(ONECYCLE, epochs=1, degrees=7)
    runs = {}
    for graph in (True, False):
        train.set_seed(1)
        runs[graph] = train.fit(search.build(ARCH), config, progress=False, quiet=True, cuda_graph=graph)
    assert runs[True].device.endswith(", CUDA graph") and "graph" not in runs[False].device
    assert min(runs[True].test_acc[0], runs[False].test_acc[0]) > 20, (runs[True].test_acc, runs[False].test_acc)


@cuda
def test_stored_weights_score_the_same_on_the_gpu_and_the_cpu(mnist_root, full_data):
    """The final notebook's recorded weights, evaluated on both devices: at most 2 of 10,000 images differ."""
    from tools import project

    final = project.notebook_paths()[-1]
    namespace = project.load_architecture(final)
    counts = {}
    for device in ("cpu", "cuda"):
        model = records.load_weights(namespace["Net"](), final.stem).to(device)
        _, test = train.make_loaders(namespace["config"], torch.device(device))
        counts[device] = train.evaluate(model, test)[1]
    assert abs(counts["cpu"] - counts["cuda"]) <= 2


@cuda
def test_no_host_sync_inside_an_epoch(mnist_root, smoke):
    """torch's sync debug mode raises on any GPU-to-host wait: planning an epoch and replaying its steps
    never waits (the epoch waits once, at its end, to read its loss)."""
    loader = _loader("cuda", shuffle=True, degrees=7)
    graphed = graphed_training(search.build(ARCH).cuda(), ONECYCLE, len(loader), loader=loader)
    torch.cuda.set_sync_debug_mode("error")
    try:
        graphed.plan_epoch()
        for _ in range(3):
            graphed.graph.replay()
    finally:
        torch.cuda.set_sync_debug_mode("default")
