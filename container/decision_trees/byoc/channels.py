"""The job's input channels, from inputdataconfig.json.

The channel list comes from that file, never from a directory listing, because input/data also
holds things that are not channels (`<channel>-manifest` files, Pipe mode's `<channel>_<epoch>`
FIFOs). Only when the file is absent (old local tests) are the directories in input/data listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from byoc.config import read_json_object
from byoc.environment import Paths
from byoc.errors import InputError

TRAINING = ("training", "train")
"""Accepted names of the training channel, in order of preference."""

VALIDATION = "validation"

MANIFEST_SUFFIX = "-manifest"


@dataclass(frozen=True)
class Channel:
    """One input channel: where its data is and how SageMaker delivers it."""

    name: str
    path: Path
    """A directory in File and FastFile mode; the FIFO of epoch 0 in Pipe mode."""
    input_mode: str = "File"
    distribution: str = "FullyReplicated"
    content_type: str = ""

    @property
    def pipe(self) -> bool:
        """Whether the data arrives as a stream through a FIFO."""
        return self.input_mode == "Pipe"

    @property
    def sharded(self) -> bool:
        """Whether each host gets a different part of the data."""
        return self.distribution == "ShardedByS3Key"


def read(paths: Paths) -> dict[str, Channel]:
    """The channels by name, as inputdataconfig.json declares them (or as directories exist)."""
    config_path = paths.input_data_config
    if not config_path.exists():
        if not paths.input_data.is_dir():
            return {}
        return {
            entry.name: Channel(entry.name, entry)
            for entry in sorted(paths.input_data.iterdir())
            if entry.is_dir() and not entry.name.endswith(MANIFEST_SUFFIX)
        }
    config = read_json_object(config_path, "a JSON object of channel names to objects")
    if not all(isinstance(c, dict) for c in config.values()):
        raise InputError(f"{config_path} must hold a JSON object of channel names to objects.")
    channels = {}
    for name, settings in config.items():
        mode = settings.get("TrainingInputMode") or "File"
        channels[name] = Channel(
            name=name,
            path=paths.pipe(name) if mode == "Pipe" else paths.channel(name),
            input_mode=mode,
            distribution=settings.get("S3DistributionType") or "FullyReplicated",
            content_type=settings.get("ContentType") or "",
        )
    return channels


def training_and_validation(channels: dict[str, Channel]) -> tuple[Channel, Channel | None]:
    """The training channel (required) and the validation channel (optional)."""
    training = next((channels[name] for name in TRAINING if name in channels), None)
    if training is None:
        found = ", ".join(f'"{name}"' for name in channels) or "none"
        raise InputError(
            f'The job has no "training" channel (channels found: {found}). '
            'Name the channel with the training data "training" (or "train").'
        )
    for channel in (training, channels.get(VALIDATION)):
        if channel is not None and not channel.path.exists():
            raise InputError(
                f'Channel "{channel.name}" has no data: {channel.path} does not exist.'
            )
    return training, channels.get(VALIDATION)
