"""SPEC §4: the Avro schemas load into the declared BigQuery tables.

BigQuery's documented conversion for `bq load --source_format=AVRO
--use_avro_logical_types`:
https://cloud.google.com/bigquery/docs/loading-data-cloud-storage-avro#avro_conversions
"""
import json
from decimal import Decimal

import fastavro
import pytest
from hypothesis import given, settings, strategies as st

import schemas

# (Avro type, logical type) -> BigQuery type, with logical types honoured.
AVRO_TO_BIGQUERY = {
    ("string", None): "STRING",
    ("long", None): "INTEGER",
    ("int", None): "INTEGER",
    ("double", None): "FLOAT",
    ("boolean", None): "BOOLEAN",
    ("bytes", None): "BYTES",
    ("long", "timestamp-millis"): "TIMESTAMP",
    ("long", "timestamp-micros"): "TIMESTAMP",
    ("int", "date"): "DATE",
}


def bigquery_type(avro_type):
    """(BigQuery type, mode) of an Avro field type."""
    if isinstance(avro_type, list):
        non_null = [t for t in avro_type if t != "null"]
        if "null" not in avro_type or len(non_null) != 1:
            raise AssertionError(f"unions must be [null, T]: {avro_type}")
        return bigquery_type(non_null[0])[0], "NULLABLE"
    if isinstance(avro_type, dict):
        if avro_type.get("sqlType") == "JSON" and avro_type["type"] == "string":
            return "JSON", "REQUIRED"  # BigQuery parses the string into a JSON column
        if avro_type["type"] == "array":
            return bigquery_type(avro_type["items"])[0], "REPEATED"
        logical = avro_type.get("logicalType")
        if logical == "decimal":
            precision, scale = avro_type["precision"], avro_type.get("scale", 0)
            # NUMERIC: precision - scale <= 29 and scale <= 9; otherwise BIGNUMERIC.
            if scale <= 9 and precision - scale <= 29:
                return "NUMERIC", "REQUIRED"
            return "BIGNUMERIC", "REQUIRED"
        return AVRO_TO_BIGQUERY[(avro_type["type"], logical)], "REQUIRED"
    return AVRO_TO_BIGQUERY[(avro_type, None)], "REQUIRED"


@pytest.mark.parametrize("table", schemas.TABLES)
def test_every_avro_field_maps_to_its_bigquery_column(table):
    avsc = json.loads(schemas.avsc_path(table).read_text())
    columns = {c["name"]: c for c in schemas.bigquery_schema(table)}
    assert [f["name"] for f in avsc["fields"]] == list(columns)
    for field in avsc["fields"]:
        column = columns[field["name"]]
        assert bigquery_type(field["type"]) == (column["type"], column.get("mode", "NULLABLE")), field["name"]
        if isinstance(field["type"], list):
            assert field.get("default", "missing") is None, f"{field['name']}: optional fields default to null"


@pytest.mark.parametrize("table", schemas.TABLES)
def test_schemas_follow_the_spec_types(table):
    avsc = json.loads(schemas.avsc_path(table).read_text())
    by_name = {f["name"]: f["type"] for f in avsc["fields"]}
    for name, avro_type in by_name.items():
        if name.endswith("_amount"):
            assert avro_type == {"type": "bytes", "logicalType": "decimal", "precision": 38, "scale": 18}, name
        if name.endswith("_date"):
            assert avro_type == {"type": "long", "logicalType": "timestamp-millis"}, name
    if table == schemas.ENDED:
        assert by_name["gs_all_game_ids"] == {"type": "array", "items": "string"}
    fastavro.parse_schema(avsc)


def test_the_mapping_rules_reject_what_bigquery_would_not_load_as_declared():
    assert bigquery_type({"type": "bytes", "logicalType": "decimal", "precision": 40, "scale": 9})[0] == "BIGNUMERIC"
    assert bigquery_type(["null", "string"]) == ("STRING", "NULLABLE")
    with pytest.raises(AssertionError):
        bigquery_type(["string", "long"])


def test_unknown_schema_names_are_a_clear_error():
    with pytest.raises(ValueError, match="no schema"):
        schemas.avro_schema("gs_nope")


def test_a_firing_record_goes_into_avro_with_its_json_objects_as_text():
    import io
    from sessions.records import from_json, to_json
    record = {"trigger": "vip", "user_id": "u", "event_type": "gs_game_session_ended",
              "gs_gameplay_session_id": "20260106202320_u", "gs_game_session_id": None, "fired_at": 1767731000000,
              "action": {"points": 500, "rate": 0.30000000000000004}, "event": {"gs_total_bet_amount": 1500.5}}
    line = to_json(record)
    row = schemas.avro_record(schemas.CAMPAIGN_TRIGGER, from_json(line))
    assert row["action"] == '{"points":500,"rate":0.30000000000000004}'
    assert row["event"] == '{"gs_total_bet_amount":1500.5}'
    buffer = io.BytesIO()
    fastavro.writer(buffer, schemas.avro_schema(schemas.CAMPAIGN_TRIGGER), [row])
    buffer.seek(0)
    assert list(fastavro.reader(buffer))[0]["action"] == row["action"]
    without_action = schemas.avro_record(schemas.CAMPAIGN_TRIGGER, from_json(to_json({**record, "action": None})))
    assert without_action["action"] is None


def test_the_avro_header_is_the_same_whatever_the_hash_seed():
    """fastavro copies a field's doc and default out of a set; the same
    records must still give the same bytes in every process."""
    import os
    import subprocess
    import sys
    script = ("import hashlib, io, fastavro, schemas\n"
              "for table in schemas.TABLES:\n"
              "    b = io.BytesIO()\n"
              "    fastavro.writer(b, schemas.avro_schema(table), [], sync_marker=b'0' * 16)\n"
              "    print(hashlib.sha256(b.getvalue()).hexdigest())\n")
    outputs = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout for seed in range(6)}
    assert len(outputs) == 1


def _avro_amount(row_value: bytes):
    """What an Avro reader makes of avro_decimal's bytes."""
    from decimal import Decimal
    return Decimal(int.from_bytes(row_value, "big", signed=True)).scaleb(-18)


def test_amounts_go_into_avro_at_18_places_and_a_19th_is_never_rounded_away():
    from decimal import Decimal, Inexact
    # A sum keeps its terms' trailing zeros: 20 places, the same amount.
    row = schemas.avro_record(schemas.ENDED, {"gs_total_win_amount": Decimal("0.50000000000000000000")})
    assert _avro_amount(row["gs_total_win_amount"]) == Decimal("0.5")
    assert _avro_amount(schemas.avro_record(schemas.ENDED, {"gs_total_win_amount": "3200"})["gs_total_win_amount"]) == 3200
    with pytest.raises(Inexact):
        schemas.avro_record(schemas.ENDED, {"gs_total_win_amount": Decimal("0.5000000000000000001")})
    with pytest.raises(ValueError, match="38 digits"):
        schemas.avro_decimal(Decimal(10) ** 20)


def test_every_avro_amount_is_the_decimal_38_18_that_avro_decimal_encodes():
    for table in schemas.TABLES:
        for field in schemas.avsc_fields(table):
            types = field["type"] if isinstance(field["type"], list) else [field["type"]]
            for avro_type in types:
                if isinstance(avro_type, dict) and avro_type.get("logicalType") == "decimal":
                    assert (avro_type["type"], avro_type["precision"], avro_type["scale"]) == (
                        "bytes", schemas.AVRO_DECIMAL_PRECISION, schemas.AVRO_DECIMAL_SCALE), field["name"]
                    assert field["name"] in schemas.decimal_fields(table)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.decimals(min_value=0, max_value=Decimal("99999999999999999999.999999999999999999"),
                            places=18, allow_nan=False, allow_infinity=False), min_size=1, max_size=4),
       st.integers(min_value=0, max_value=4))
def test_avro_decimal_writes_the_bytes_fastavro_writes_for_the_decimal(amounts, trailing_zeros):
    """Byte for byte what fastavro's own decimal writer gives, read back as the
    same amount; sums keep their terms' trailing zeros (more than 18 places)."""
    import io
    from sessions.events import EXACT
    total = Decimal(0).scaleb(-18 - trailing_zeros)  # 0E-20 keeps two zeros past the 18th place
    for amount in amounts:
        total = EXACT.add(total, amount)
    schema = {"type": "record", "name": "r", "fields": [
        {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 38, "scale": 18}}]}

    def avro_file(value):
        buffer = io.BytesIO()
        fastavro.writer(buffer, schema, [{"amount": value}], sync_marker=b"0" * 16)
        return buffer.getvalue()

    if total >= Decimal(10) ** 20:
        with pytest.raises(ValueError):
            schemas.avro_decimal(total)
        return
    ours = avro_file(schemas.avro_decimal(total))
    assert ours == avro_file(total.quantize(Decimal(1).scaleb(-18), context=EXACT))
    assert list(fastavro.reader(io.BytesIO(ours)))[0]["amount"] == total
