"""Pose data: readers for the formats users have (`formats`), importers (motion capture retargeted to SMPL-X), one
in-memory container, the HDF5 store, leak-free splits, data checks, preparation for training and a torch Dataset."""

from probpose.data.amass import AMASS_SPLIT_RULE, amass_split, canonical_dataset, scan_tree
from probpose.data.bundled import BUNDLED, BUNDLED_IMAGES, bundled, bundled_images
from probpose.data.checks import StaticJoint, check_not_constant, selection_without, static_joints
from probpose.data.dataset import PoseDataset
from probpose.data.formats import (
    FORMATS,
    MOCAP_FORMATS,
    axis_angle_to_pasyn,
    detect_format,
    load_aistpp,
    load_amass,
    load_amc,
    load_bvh,
    load_pasyn,
    load_poses,
    load_smplcodec,
    load_source,
    pasyn_to_axis_angle,
    save_poses,
)
from probpose.data.importers import DEFAULT_JOINTS, import_poses, import_recording
from probpose.data.importing import ImportRequest, ImportRun, run_import
from probpose.data.mocap import Mocap, read_amc, read_asf, read_bvh
from probpose.data.poseset import PoseSet, SequenceInfo
from probpose.data.prepare import PreparedData, prepare_data
from probpose.data.retarget import MAPS, Retargeted, RetargetMap, load_map, retarget
from probpose.data.sequences import resample, trim
from probpose.data.splits import SPLIT_NAMES, Split, parse_fractions, split_poses, split_unit
from probpose.data.store import LAYOUT_VERSION, StoreInfo, StoreWriter, read_info, read_split, write_store
from probpose.data.stream import StoreSplit
from probpose.data.tree import TreeImport, import_tree
from probpose.errors import DataError

__all__ = [
    "ImportRequest",
    "ImportRun",
    "run_import",
    "AMASS_SPLIT_RULE",
    "amass_split",
    "canonical_dataset",
    "scan_tree",
    "resample",
    "trim",
    "StoreWriter",
    "StoreSplit",
    "TreeImport",
    "import_tree",
    "BUNDLED",
    "BUNDLED_IMAGES",
    "bundled_images",
    "bundled",
    "StaticJoint",
    "check_not_constant",
    "selection_without",
    "static_joints",
    "PoseDataset",
    "DEFAULT_JOINTS",
    "FORMATS",
    "MOCAP_FORMATS",
    "axis_angle_to_pasyn",
    "detect_format",
    "import_poses",
    "import_recording",
    "load_aistpp",
    "load_amass",
    "load_amc",
    "load_bvh",
    "load_pasyn",
    "Mocap",
    "read_amc",
    "read_asf",
    "read_bvh",
    "MAPS",
    "RetargetMap",
    "Retargeted",
    "load_map",
    "retarget",
    "load_smplcodec",
    "load_poses",
    "save_poses",
    "load_source",
    "pasyn_to_axis_angle",
    "DataError",
    "PoseSet",
    "SequenceInfo",
    "PreparedData",
    "prepare_data",
    "SPLIT_NAMES",
    "Split",
    "parse_fractions",
    "split_poses",
    "split_unit",
    "LAYOUT_VERSION",
    "StoreInfo",
    "read_info",
    "read_split",
    "write_store",
]
