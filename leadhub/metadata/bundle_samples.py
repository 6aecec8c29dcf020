"""Sample data in bundles: a few records of a template's objects, so that a
template installed into a fresh instance shows what it is for.

    samples/<object>.yaml     a list of records: values by field api name; a
                              lookup as the name of the record it points at
                              (ids differ between instances); user fields and
                              computed fields left out

Export takes the first records (by id) of the chosen objects. Install adds
them on request only (`with_samples`), in the install's own transaction after
the metadata, through the record service as the installing admin: a record
the record service refuses stops the whole install, naming the file and row.
An upgrade never adds them again and an uninstall leaves them: once in, they
are the customer's data. The record service is reached through the runtime
(it is a layer above this one)."""
from __future__ import annotations

import datetime as dt
import decimal
from typing import TYPE_CHECKING, Any

from leadhub.platform.errors import BadRequest, LeadhubError

if TYPE_CHECKING:
    from leadhub.metadata.registry import Registry
    from leadhub.platform.permissions import Actor

MAX_SAMPLES = 200          # records per object


def path(obj: str) -> str:
    return f"samples/{obj}.yaml"


def check(samples: Any, obj: str) -> list[dict]:
    """A samples file's content, or a 400 saying what is wrong with it."""
    if not isinstance(samples, list) or len(samples) > MAX_SAMPLES \
            or not all(isinstance(r, dict) for r in samples):
        raise BadRequest(f"{path(obj)} must hold a list of at most {MAX_SAMPLES} records.",
                         {"file": f"{path(obj)} is not a list of records."})
    return samples


def export(runtime, actor: "Actor", reg: "Registry", objects: list[str], limit: int) -> dict[str, list[dict]]:
    """The first `limit` records of each object, portable."""
    out: dict[str, list[dict]] = {}
    for name in objects:
        obj = reg.objects.get(name)
        if obj is None:
            raise BadRequest(f"No object '{name}' to take sample records from.", {"samples": f"No object '{name}'."})
        fields, paths = [], {}
        for fd in obj.custom_fields():
            if fd.type.computed or not fd.writable or fd.settings.get("reference_to") == "user":
                continue
            if fd.type.is_reference:
                target = reg.objects.get(fd.settings.get("reference_to"))
                if target is None or not target.name_field:
                    continue
                paths[fd.api_name] = f"{fd.api_name}.{target.name_field}"
            fields.append(fd.api_name)
        spec = {"fields": ["id", *fields, *paths.values()], "sort": ["id"], "page_size": max(1, min(limit, MAX_SAMPLES))}
        records = []
        for rec in runtime.records.query(actor, name, spec)["records"]:
            values = {}
            for f in fields:
                value = rec.get(paths[f]) if f in paths else rec.get(f)
                if value not in (None, "", []):
                    values[f] = _plain(value)
            records.append(values)
        out[name] = records
    return out


def install(runtime, actor: "Actor", samples: dict[str, list[dict]]) -> int:
    """Add the records (inside the caller's write); returns how many."""
    reg = runtime.cache.current()
    made = 0
    for name in _order(reg, samples):
        obj = reg.objects.get(name)
        if obj is None:
            raise BadRequest(f"{path(name)}: no object '{name}' here.", {path(name): "Unknown object."})
        rows = []
        for i, rec in enumerate(samples[name], start=1):
            values = {}
            for field_name, value in rec.items():
                fd = obj.fields.get(field_name)
                if fd is None:
                    raise BadRequest(f"{path(name)}, record {i}: no field '{field_name}' on {name}.",
                                     {f"{path(name)}.{i}.{field_name}": "Unknown field."})
                if fd.type.is_reference and isinstance(value, str):
                    value = _id_by_name(runtime, actor, reg, fd, value, f"{path(name)}.{i}.{field_name}")
                values[field_name] = value
            rows.append(values)
        try:
            made += len(runtime.records.bulk_create(actor, name, rows))
        except LeadhubError as exc:     # records.0.course: the first record, counted from 1 as files are
            where = {f"{path(name)}.{_row(k)}": v for k, v in exc.fields.items()}
            raise BadRequest(f"A sample record of {name} was refused: "
                             + "; ".join(f"{k}: {v}" for k, v in where.items()), where) from None
    return made


def _row(key: str) -> str:
    head, _, rest = key.partition(".")
    number, _, field_name = rest.partition(".")
    return f"{int(number) + 1}.{field_name}" if head == "records" and number.isdigit() else key


def _id_by_name(runtime, actor, reg, fd, name: str, where: str) -> int:
    target = reg.objects[fd.settings["reference_to"]]
    spec = {"filter": {"field": target.name_field, "op": "eq", "value": name}, "fields": ["id"], "page_size": 2}
    found = runtime.records.query(actor, target.api_name, spec)["records"]
    if len(found) != 1:
        problem = "nothing" if not found else "several records"
        raise BadRequest(f"{where}: '{name}' names {problem} of {target.api_name}.", {where: f"Names {problem}."})
    return found[0]["id"]


def _order(reg: "Registry", samples: dict) -> list[str]:
    """Objects whose records others' lookups name come first."""
    done: list[str] = []

    def visit(name: str, path_: tuple = ()) -> None:
        if name in done or name in path_:
            return
        obj = reg.objects.get(name)
        for fd in (obj.custom_fields() if obj else []):
            target = fd.settings.get("reference_to")
            if fd.type.is_reference and target in samples and target != name:
                visit(target, path_ + (name,))
        done.append(name)
    for name in samples:
        visit(name)
    return done


def _plain(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value

