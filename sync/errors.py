"""Errors of the hand-over to the cloud (the sync layer never sees a driver's)."""

from __future__ import annotations


class SyncError(Exception):
    """Base of every sync error a plant engineer may read."""


class ManifestNotFound(SyncError):
    """No manifest with that sequence number or id."""


class TamperedManifest(SyncError):
    """A manifest whose body, digest or signature do not agree."""


class KeyProblem(SyncError):
    """The signing key is missing, unreadable or not an Ed25519 key."""
