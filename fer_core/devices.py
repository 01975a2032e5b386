"""Which device a run trains on: what torch sees here, a name checked before launch, and the DDP ranks."""
from __future__ import annotations

import os

import torch


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def available_devices() -> list[str]:
    """Devices torch can train on here, best first ("auto" is not included)."""
    out = []
    if torch.cuda.is_available():
        out.append("cuda")
    if _mps_available():
        out.append("mps")
    return out + ["cpu"]


def device_description() -> str:
    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        return f"cuda: {torch.cuda.get_device_name(0)}" + (f" (+{n - 1} more)" if n > 1 else "")
    if _mps_available():
        return "mps (Apple GPU)"
    return f"cpu ({torch.get_num_threads()} threads, no GPU found by torch {torch.__version__})"


def check_device(device: str) -> str | None:
    """None if `device` can be used here, else a message saying why not (the dashboard asks before launch)."""
    if device in ("auto", "cpu"):
        return None
    have = available_devices()
    if device.startswith("cuda"):
        if "cuda" not in have:
            return (f"a CUDA GPU was requested but torch {torch.__version__} sees none on this machine "
                    "(choose device cpu or auto)")
        if ":" in device:
            try:
                idx = int(device.split(":", 1)[1])
            except ValueError:
                return f"device {device!r} is not a valid CUDA device"
            if idx >= torch.cuda.device_count():
                return f"{device} was requested but only {torch.cuda.device_count()} CUDA device(s) exist"
        return None
    if device == "mps":
        return None if "mps" in have else "Apple MPS was requested but it is not available here (choose cpu or auto)"
    return f"unknown device {device!r} (use auto, cpu, cuda or mps)"


def resolve_device(name: str) -> torch.device:
    """"auto" -> the best device here; a named one that is missing is a ValueError (the trainer's message)."""
    if name == "auto":
        return torch.device(available_devices()[0])
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was requested but no CUDA GPU is available (use --device auto or cpu)")
    if name == "mps" and not _mps_available():
        raise ValueError("--device mps was requested but MPS is not available (use --device auto or cpu)")
    return torch.device(name)


def dist_info() -> tuple[int, int, int]:
    """(world size, rank, local rank) from torchrun's environment; (1, 0, 0) for a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return world, int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))


def setup_training_device(cfg) -> tuple[torch.device, int, int]:
    """(device, world size, rank); joins the process group under torchrun."""
    world, rank, local_rank = dist_info()
    device = resolve_device(cfg.device)
    if world > 1:
        import torch.distributed as dist

        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device, world, rank
