"""Who this member is (its member and cluster IDs), kept beside its data and never replicated."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from pyetcd.config import ServerConfig
from pyetcd.ids import format_id


@dataclass(frozen=True, slots=True)
class Identity:
    """Who this member is; kept beside the data, never replicated."""

    member_id: int
    cluster_id: int

    @staticmethod
    def path(config: ServerConfig) -> str:
        return os.path.join(config.member_dir, "identity.json")

    @staticmethod
    def load(config: ServerConfig) -> Identity | None:
        try:
            with open(Identity.path(config), encoding="utf-8") as fh:
                raw = json.load(fh)
        except FileNotFoundError:
            return None
        return Identity(int(raw["member_id"], 16), int(raw["cluster_id"], 16))

    def save(self, config: ServerConfig) -> None:
        os.makedirs(config.member_dir, exist_ok=True)
        tmp = Identity.path(config) + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"member_id": format_id(self.member_id), "cluster_id": format_id(self.cluster_id)}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, Identity.path(config))
