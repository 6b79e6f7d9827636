from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor
PATCH_MERGE_KEY_FIELD_NUMBER: _ClassVar[int]
patch_merge_key: _descriptor.FieldDescriptor
PATCH_STRATEGY_FIELD_NUMBER: _ClassVar[int]
patch_strategy: _descriptor.FieldDescriptor
QUANTITY_FIELD_NUMBER: _ClassVar[int]
quantity: _descriptor.FieldDescriptor
MICRO_TIME_FIELD_NUMBER: _ClassVar[int]
micro_time: _descriptor.FieldDescriptor
