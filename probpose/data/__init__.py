"""Pose data: importers for the formats users have, one in-memory container, the HDF5 store,
leak-free splits and a torch Dataset."""

from probpose.data.bundled import BUNDLED, bundled
from probpose.data.dataset import PoseDataset
from probpose.data.importers import (
    DEFAULT_JOINTS,
    FORMATS,
    detect_format,
    import_poses,
    import_recording,
    load_aistpp,
    load_amass,
    load_pasyn,
    load_smplcodec,
    load_source,
)
from probpose.data.poseset import DataError, PoseSet, SequenceInfo
from probpose.data.splits import SPLIT_NAMES, Split, parse_fractions, split_poses
from probpose.data.store import LAYOUT_VERSION, StoreInfo, read_info, read_split, write_store

__all__ = [
    "BUNDLED",
    "bundled",
    "PoseDataset",
    "DEFAULT_JOINTS",
    "FORMATS",
    "detect_format",
    "import_poses",
    "import_recording",
    "load_aistpp",
    "load_amass",
    "load_pasyn",
    "load_smplcodec",
    "load_source",
    "DataError",
    "PoseSet",
    "SequenceInfo",
    "SPLIT_NAMES",
    "Split",
    "parse_fractions",
    "split_poses",
    "LAYOUT_VERSION",
    "StoreInfo",
    "read_info",
    "read_split",
    "write_store",
]
