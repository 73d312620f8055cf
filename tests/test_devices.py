import pytest
import torch

from tabnas.devices import (
    cpu_threads,
    hardware_settings,
    resolve_device,
    seeded,
)


def test_auto_picks_cpu_without_cuda():
    config = resolve_device("auto", cuda_available=False)
    assert config.device == torch.device("cpu")
    assert config.amp_dtype is None and not config.pin_memory and not config.non_blocking


def test_auto_picks_cuda_when_present(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    config = resolve_device("auto", cuda_available=True)
    assert config.device.type == "cuda"
    assert config.amp_dtype == torch.bfloat16
    assert config.pin_memory and config.non_blocking
    assert config.eval_batch_size > resolve_device("cpu").eval_batch_size


def test_cuda_without_bf16_runs_in_full_precision(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert resolve_device("cuda:0", cuda_available=True).amp_dtype is None


def test_explicit_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda", cuda_available=False)


@pytest.mark.parametrize("bad", ["gpu0", "tpu", "mps"])
def test_unknown_device_names_the_choices(bad):
    with pytest.raises(ValueError, match="device must be"):
        resolve_device(bad, cuda_available=False)


def test_cpu_settings_are_left_alone_and_seeding_is_local():
    config = resolve_device("cpu")
    before = torch.random.get_rng_state()
    with hardware_settings(config), seeded(123, config):
        a = torch.rand(3)
    with seeded(123, config):
        b = torch.rand(3)
    assert torch.equal(a, b)
    assert torch.equal(torch.random.get_rng_state(), before)
    assert cpu_threads() >= 1


def test_a_cpu_fit_seeds_no_accelerator(monkeypatch):
    # torch.manual_seed would reseed every GPU (and MPS) for good: fork_rng restores
    # only the generators it was given, so seeding must touch only those
    calls = []
    for module in (torch.cuda, torch.mps):
        for name in ("manual_seed", "manual_seed_all"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, lambda *a, _n=name: calls.append(_n))
    with seeded(5, resolve_device("cpu")):
        torch.rand(1)
    assert calls == []


def test_autocast_is_a_no_op_on_cpu():
    config = resolve_device("cpu")
    with config.autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def test_cpu_threads_never_exceed_the_allowed_cpus(monkeypatch):
    import tabnas.devices as devices

    before = torch.get_num_threads()
    monkeypatch.setattr(devices, "available_cpus", lambda: 1)
    torch.set_num_threads(2)
    try:
        with hardware_settings(resolve_device("cpu")):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_cuda_index_the_machine_lacks_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert resolve_device("cuda:1", cuda_available=True, cuda_device_count=2).device.index == 1
    with pytest.raises(ValueError, match=r"has 1 CUDA device\(s\), cuda:0 to cuda:0"):
        resolve_device("cuda:3", cuda_available=True, cuda_device_count=1)
