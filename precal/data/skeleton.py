"""Skeleton topology: which joints are connected, by joint name.

Both the dashboard (stick figures) and the joint-wise encoder (messages along the bones) need the
bones; keeping them with the data layer means neither depends on the other.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

KINECT_V1_BONES: Tuple[Tuple[str, str], ...] = (
    ("head", "shoulder_center"), ("shoulder_center", "spine"), ("spine", "hip_center"),
    ("shoulder_center", "left_shoulder"), ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
    ("left_wrist", "left_hand"),
    ("shoulder_center", "right_shoulder"), ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
    ("right_wrist", "right_hand"),
    ("hip_center", "left_hip"), ("left_hip", "left_knee"), ("left_knee", "left_ankle"), ("left_ankle", "left_foot"),
    ("hip_center", "right_hip"), ("right_hip", "right_knee"), ("right_knee", "right_ankle"),
    ("right_ankle", "right_foot"),
)
"""The 19 bones of the 20-joint Kinect v1 skeleton (the joint order UTD-MHAD uses)."""


def skeleton_bones(joint_names: Sequence[str]) -> List[Tuple[int, int]]:
    """Bones as joint-index pairs for the given joint order (bones naming unknown joints are skipped)."""
    pos = {n: i for i, n in enumerate(joint_names)}
    return [(pos[a], pos[b]) for a, b in KINECT_V1_BONES if a in pos and b in pos]
