"""URL converters: record ids are 64-bit, so a larger number is a 404 rather
than an overflow in the database driver."""
from werkzeug.exceptions import NotFound
from werkzeug.routing import BaseConverter

INT64 = 2**63 - 1


class RecordIdConverter(BaseConverter):
    regex = r"\d+"
    weight = 50

    def to_python(self, value: str) -> int:
        number = int(value)
        if not 1 <= number <= INT64:
            raise NotFound(f"No record {value}.")
        return number

    def to_url(self, value) -> str:
        return str(int(value))
