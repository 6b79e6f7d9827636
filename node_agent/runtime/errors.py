"""The runtime boundary's exception tree (DESIGN 11).

RuntimeError_
  NotFound            the sandbox, container or image does not exist
  ImageNotPresent     the image is not in the local store and policy forbids pulling
  ImagePullError      a pull was tried and failed (message is Docker's)
  ContainerConfigError the runtime refused the container's config
  RuntimeUnavailable  the daemon cannot be reached (retryable)

Adapters translate their library's exceptions here, once, with `raise ... from exc`.
Pure code (node_agent.pods.actions) never sees them; the executor turns them into
waiting reasons (ErrImagePull, CreateContainerConfigError, ...).
"""

from __future__ import annotations


class RuntimeError_(Exception):
    """Base of every runtime error. `retryable` says whether trying again may help."""

    retryable = False


class NotFound(RuntimeError_):
    pass


class ImageNotPresent(RuntimeError_):
    pass


class ImagePullError(RuntimeError_):
    retryable = True


class ContainerConfigError(RuntimeError_):
    pass


class RuntimeUnavailable(RuntimeError_):
    retryable = True
