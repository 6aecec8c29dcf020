"""Field types, one class each; importing this package registers them all."""
from leadhub.metadata.types.base import FieldType, get_type, type_names  # noqa: F401
from leadhub.metadata.types import text, numbers, temporal, choice, relations, computed  # noqa: F401,E402
