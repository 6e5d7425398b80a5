"""Who this member is (its member and cluster IDs), kept beside its data and never replicated."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from pyetcd.ids import format_id


@dataclass(frozen=True, slots=True)
class Identity:
    """Who this member is; kept beside the data, never replicated."""

    member_id: int
    cluster_id: int

    @staticmethod
    def path(member_dir: str) -> str:
        return os.path.join(member_dir, "identity.json")

    @staticmethod
    def load(member_dir: str) -> Identity | None:
        try:
            with open(Identity.path(member_dir), encoding="utf-8") as fh:
                raw = json.load(fh)
        except FileNotFoundError:
            return None
        return Identity(int(raw["member_id"], 16), int(raw["cluster_id"], 16))

    def save(self, member_dir: str) -> None:
        os.makedirs(member_dir, exist_ok=True)
        tmp = Identity.path(member_dir) + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"member_id": format_id(self.member_id), "cluster_id": format_id(self.cluster_id)}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, Identity.path(member_dir))
