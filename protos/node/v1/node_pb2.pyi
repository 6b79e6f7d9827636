from protos.core.v1 import core_pb2 as _core_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RegisterRequest(_message.Message):
    __slots__ = ("node_name", "hostname", "advertise_address", "force_address", "capacity", "allocatable", "labels", "taints", "os_image", "kernel_version", "container_runtime_version", "kubelet_version", "operating_system", "architecture", "machine_id", "boot_id", "kubelet_port")
    class CapacityEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class AllocatableEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    ADVERTISE_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    FORCE_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    ALLOCATABLE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    TAINTS_FIELD_NUMBER: _ClassVar[int]
    OS_IMAGE_FIELD_NUMBER: _ClassVar[int]
    KERNEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_RUNTIME_VERSION_FIELD_NUMBER: _ClassVar[int]
    KUBELET_VERSION_FIELD_NUMBER: _ClassVar[int]
    OPERATING_SYSTEM_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    MACHINE_ID_FIELD_NUMBER: _ClassVar[int]
    BOOT_ID_FIELD_NUMBER: _ClassVar[int]
    KUBELET_PORT_FIELD_NUMBER: _ClassVar[int]
    node_name: str
    hostname: str
    advertise_address: str
    force_address: bool
    capacity: _containers.ScalarMap[str, str]
    allocatable: _containers.ScalarMap[str, str]
    labels: _containers.ScalarMap[str, str]
    taints: _containers.RepeatedCompositeFieldContainer[_core_pb2.Taint]
    os_image: str
    kernel_version: str
    container_runtime_version: str
    kubelet_version: str
    operating_system: str
    architecture: str
    machine_id: str
    boot_id: str
    kubelet_port: int
    def __init__(self, node_name: _Optional[str] = ..., hostname: _Optional[str] = ..., advertise_address: _Optional[str] = ..., force_address: _Optional[bool] = ..., capacity: _Optional[_Mapping[str, str]] = ..., allocatable: _Optional[_Mapping[str, str]] = ..., labels: _Optional[_Mapping[str, str]] = ..., taints: _Optional[_Iterable[_Union[_core_pb2.Taint, _Mapping]]] = ..., os_image: _Optional[str] = ..., kernel_version: _Optional[str] = ..., container_runtime_version: _Optional[str] = ..., kubelet_version: _Optional[str] = ..., operating_system: _Optional[str] = ..., architecture: _Optional[str] = ..., machine_id: _Optional[str] = ..., boot_id: _Optional[str] = ..., kubelet_port: _Optional[int] = ...) -> None: ...

class RegisterResponse(_message.Message):
    __slots__ = ("pod_cidr", "cluster_cidr", "heartbeat_period_seconds", "lease_duration_seconds", "node")
    POD_CIDR_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_CIDR_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_PERIOD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LEASE_DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    pod_cidr: str
    cluster_cidr: str
    heartbeat_period_seconds: int
    lease_duration_seconds: int
    node: _core_pb2.Node
    def __init__(self, pod_cidr: _Optional[str] = ..., cluster_cidr: _Optional[str] = ..., heartbeat_period_seconds: _Optional[int] = ..., lease_duration_seconds: _Optional[int] = ..., node: _Optional[_Union[_core_pb2.Node, _Mapping]] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("heartbeat_period_seconds",)
    HEARTBEAT_PERIOD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    heartbeat_period_seconds: int
    def __init__(self, heartbeat_period_seconds: _Optional[int] = ...) -> None: ...

class WatchPodsRequest(_message.Message):
    __slots__ = ("resource_version", "allow_bookmarks")
    RESOURCE_VERSION_FIELD_NUMBER: _ClassVar[int]
    ALLOW_BOOKMARKS_FIELD_NUMBER: _ClassVar[int]
    resource_version: str
    allow_bookmarks: bool
    def __init__(self, resource_version: _Optional[str] = ..., allow_bookmarks: _Optional[bool] = ...) -> None: ...

class PodEvent(_message.Message):
    __slots__ = ("type", "pod", "resource_version", "code", "message")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    POD_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_VERSION_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    type: str
    pod: _core_pb2.Pod
    resource_version: str
    code: int
    message: str
    def __init__(self, type: _Optional[str] = ..., pod: _Optional[_Union[_core_pb2.Pod, _Mapping]] = ..., resource_version: _Optional[str] = ..., code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class UpdatePodStatusRequest(_message.Message):
    __slots__ = ("pod",)
    POD_FIELD_NUMBER: _ClassVar[int]
    pod: _core_pb2.Pod
    def __init__(self, pod: _Optional[_Union[_core_pb2.Pod, _Mapping]] = ...) -> None: ...

class DeletePodRequest(_message.Message):
    __slots__ = ("namespace", "name", "uid")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    name: str
    uid: str
    def __init__(self, namespace: _Optional[str] = ..., name: _Optional[str] = ..., uid: _Optional[str] = ...) -> None: ...

class DeletePodResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
