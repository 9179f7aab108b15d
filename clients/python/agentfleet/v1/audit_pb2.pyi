from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AuditEntry(_message.Message):
    __slots__ = ["hash", "prev_hash", "record", "seq"]
    HASH_FIELD_NUMBER: _ClassVar[int]
    PREV_HASH_FIELD_NUMBER: _ClassVar[int]
    RECORD_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    hash: bytes
    prev_hash: bytes
    record: bytes
    seq: int
    def __init__(self, seq: _Optional[int] = ..., prev_hash: _Optional[bytes] = ..., hash: _Optional[bytes] = ..., record: _Optional[bytes] = ...) -> None: ...

class AuditRecord(_message.Message):
    __slots__ = ["action", "at", "attempt", "coordinator", "decision", "effect_id", "error_code", "fan_index", "host", "http_status", "kind", "method", "outcome", "path", "payload", "payload_sha256", "step", "task_id", "tenant", "violations", "worker", "workflow"]
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = []
    ACTION_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    COORDINATOR_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    EFFECT_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    FAN_INDEX_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    KIND_ACTION_DISPATCHED: AuditRecord.Kind
    KIND_ACTION_OUTCOME: AuditRecord.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    KIND_UNSPECIFIED: AuditRecord.Kind
    METHOD_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_SHA256_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    VIOLATIONS_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    action: str
    at: _timestamp_pb2.Timestamp
    attempt: int
    coordinator: str
    decision: str
    effect_id: str
    error_code: str
    fan_index: int
    host: str
    http_status: int
    kind: AuditRecord.Kind
    method: str
    outcome: str
    path: str
    payload: str
    payload_sha256: str
    step: str
    task_id: str
    tenant: str
    violations: _containers.RepeatedScalarFieldContainer[str]
    worker: str
    workflow: str
    def __init__(self, kind: _Optional[_Union[AuditRecord.Kind, str]] = ..., at: _Optional[_Union[_timestamp_pb2.Timestamp, _Mapping]] = ..., task_id: _Optional[str] = ..., tenant: _Optional[str] = ..., workflow: _Optional[str] = ..., step: _Optional[str] = ..., fan_index: _Optional[int] = ..., attempt: _Optional[int] = ..., action: _Optional[str] = ..., worker: _Optional[str] = ..., coordinator: _Optional[str] = ..., effect_id: _Optional[str] = ..., method: _Optional[str] = ..., host: _Optional[str] = ..., path: _Optional[str] = ..., payload_sha256: _Optional[str] = ..., outcome: _Optional[str] = ..., http_status: _Optional[int] = ..., error_code: _Optional[str] = ..., decision: _Optional[str] = ..., violations: _Optional[_Iterable[str]] = ..., payload: _Optional[str] = ...) -> None: ...
