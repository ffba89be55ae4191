"""The site's Ed25519 manifest-signing key: generate, load, export the public half."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge.store.files import PRIVATE, write_replacing
from sync.errors import KeyProblem


def generate(path: Path, *, overwrite: bool = False) -> Ed25519PublicKey:
    """Write a new private key (PEM, mode 0600); refuse to replace one unless told to."""
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise KeyProblem(f"{path} exists: a new key would orphan every signature made with it "
                         "(pass --force to replace it anyway)")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    # A fresh 0600 file renamed over the old one: an old 0644 mode is not kept, and a
    # symlink planted at the path is replaced, not followed.
    write_replacing(path, pem, PRIVATE, durable=True)
    return key.public_key()


def load_private(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise KeyProblem(f"no signing key at {path}: run `codeline keys generate`") from None
    except (ValueError, TypeError, OSError) as exc:
        raise KeyProblem(f"{path} is not a usable private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyProblem(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def public_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM,
                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def load_public(pem: str | bytes) -> Ed25519PublicKey:
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise KeyProblem(f"not a public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyProblem("not an Ed25519 public key")
    return key
