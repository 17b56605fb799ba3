"""Building S3 clients from the settings and the credential store, for any S3-compatible endpoint."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from engine.config import Settings
from engine.credentials.store import Credentials


def make_client(settings: Settings, credentials: Credentials, **config: Any) -> Any:
    """An S3 client; keys from the environment/keyring, else boto3's own credential chain.

    ``config`` overrides botocore Config options (pool size for parallel parts, shorter timeouts for retries).
    """
    import boto3  # here: most commands never reach S3, and boto3 costs a third of their start
    from botocore.config import Config as BotoConfig

    key_id = credentials.get("aws-access-key-id")
    secret = credentials.get("aws-secret-access-key")
    kwargs: dict[str, Any] = {"region_name": settings.s3_region or None}
    if settings.s3_endpoint_url:
        kwargs["endpoint_url"] = settings.s3_endpoint_url
    if key_id and secret:
        kwargs["aws_access_key_id"] = key_id
        kwargs["aws_secret_access_key"] = secret
    options: dict[str, Any] = {
        "s3": {"addressing_style": "path" if settings.s3_path_style else "auto"},
        "retries": {"max_attempts": 3, "mode": "standard"},
        "connect_timeout": 10,
        "read_timeout": 60,
    }
    boto_config = BotoConfig(**{**options, **config})
    return boto3.session.Session().client("s3", config=boto_config, **kwargs)


def object_url(settings: Settings, bucket: str, key: str) -> str:
    """The object's URL, for the result's ``file_url``."""
    quoted = quote(key, safe="/")
    if settings.s3_endpoint_url:
        return f"{settings.s3_endpoint_url.rstrip('/')}/{bucket}/{quoted}"
    region = settings.s3_region or "us-east-1"
    return f"https://{bucket}.s3.{region}.amazonaws.com/{quoted}"
