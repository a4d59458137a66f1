"""Key Access Policy: model, YAML policy files and off-chain evaluation (pure, no I/O).

The model mirrors the on-chain ``Policy`` struct; :func:`evaluate` mirrors the
contracts' order of checks and integer geometry bit for bit (``docs/ARCHITECTURE.md``),
composed of the checks of :mod:`shardkey.policy.checks`; :func:`release_decision` is the
one decision the KOS, the holders and the CLI pre-flight take before a release.
"""

from shardkey.policy.checks import (
    AccessCheck,
    AllOf,
    ApprovalsCheck,
    Check,
    DatasetStatusCheck,
    LocationCheck,
    TimeWindowCheck,
)
from shardkey.policy.errors import (
    PolicyDeniedError,
    PolicyError,
    PolicyFileError,
    PolicyValueError,
)
from shardkey.policy.evaluate import (
    ApprovalStatus,
    Attestation,
    DatasetStatus,
    DenialReason,
    GroupStatus,
    RequestContext,
    approvals_status,
    check,
    evaluate,
)
from shardkey.policy.geo import degrees_to_e6, e6_to_degrees, in_circle, in_polygon
from shardkey.policy.model import (
    POLICY_ABI_TYPE,
    ApprovalGroup,
    Circle,
    Policy,
    Polygon,
    normalize_address,
)
from shardkey.policy.release import ReleaseRequest, release_decision
from shardkey.policy.yaml_file import PolicyFile, Resolver, parse_policy_yaml, policy_to_yaml_dict

__all__ = [
    "POLICY_ABI_TYPE",
    "AccessCheck",
    "AllOf",
    "ApprovalGroup",
    "ApprovalStatus",
    "ApprovalsCheck",
    "Attestation",
    "Check",
    "Circle",
    "DatasetStatus",
    "DatasetStatusCheck",
    "DenialReason",
    "GroupStatus",
    "LocationCheck",
    "Policy",
    "PolicyDeniedError",
    "PolicyError",
    "PolicyFile",
    "PolicyFileError",
    "PolicyValueError",
    "Polygon",
    "ReleaseRequest",
    "RequestContext",
    "Resolver",
    "TimeWindowCheck",
    "approvals_status",
    "check",
    "degrees_to_e6",
    "e6_to_degrees",
    "evaluate",
    "in_circle",
    "in_polygon",
    "normalize_address",
    "parse_policy_yaml",
    "policy_to_yaml_dict",
    "release_decision",
]
