"""`manage import_vehicles`: the dashboard's CSV header, per-line errors with line
numbers, a summary, updates by plate (a second import changes nothing)."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import CommandError, call_command

from vehicles import services
from vehicles.management.commands import import_vehicles
from vehicles.models import Vehicle, VehicleList

from .conftest import register, snapshot

pytestmark = pytest.mark.django_db

HEADER = "plate_number,unique_id,name,type,brand,color,status\n"


def run(list_name: str, path, *options: str) -> list[str]:
    out = io.StringIO()
    call_command("import_vehicles", list_name, str(path), "--no-progress", *options, stdout=out)
    return [re.sub(r"in [0-9.]+ s$", "in T s", line) for line in out.getvalue().splitlines()]


def rows() -> list[tuple]:
    return list(
        Vehicle.objects.order_by("plate").values_list(
            "plate_number", "plate", "search_key", "unique_id", "name", "type", "brand", "color", "status"
        )
    )


def test_import_with_bad_lines(tmp_path, gate):
    register(gate, "B 1234 XYZ", name="Old Owner", status="whitelist", color="red")
    path = tmp_path / "vehicles.csv"
    path.write_bytes(
        (
            "\ufeff"
            + HEADER
            + "B 1234 XYZ,V1,Budi Santoso,car,Toyota,black,blacklist\n"  # 2: updates the registered one
            + "LS15 EBC,V2,Alice Walker,car,Ford,blue,whitelist\n"
            + "\n"  # 4: blank, skipped
            + "X,V3,Too Short,car,,,\n"  # 5: plate too short
            + "D 1 A,V4,Dewi,motorcycle,Honda\n"  # 6: fields missing
            + '"K 9\n9 AB",V5,Quoted,car,,,\n'  # 7-8: a quoted line break: a control character
            + "F 12 GH,V6,"
            + "n" * 201
            + ",car,,,\n"  # 9: name too long
            + '"Z 7 Q",V7,"Zed, Jr.",van,VW,white,\n'  # 10: a quoted comma
            + "ls15-ebc,V2b,Alice W.,car,Ford,blue,whitelist\n"  # 11: the same plate again: the later wins
        ).encode()
        + b"H 1 J,V8,\xff\xfe,car,,,\n"  # 12: not UTF-8
        + b"J 2 K,V9,"
        + b"x" * 5000
        + b",car,,,\n"  # 13: longer than a line may be
        + b"M 3 N,V10,Last,car,,,whitelist"  # 14: no final line break
    )
    output = run("gate", path)
    assert output == [
        "line 5: plate_number: it must hold 2 to 15 letters (A-Z) or digits once spaces and punctuation "
        "are left out",
        "line 6: 5 fields where the header has 7",
        "line 8: plate_number: it must not contain control characters",
        "line 9: name: Ensure this field has no more than 200 characters.",
        "line 12: the line is not UTF-8 text",
        "line 13: the line is longer than 4096 bytes",
        "imported vehicles.csv into vehicle list 'gate': 11 lines, 3 vehicles created, 1 updated, "
        "6 lines refused, in T s",
        "refused lines by reason: 5 fields where the header has 7: 1, name: 1, plate_number: 2, "
        "the line is longer than 4096 bytes: 1, the line is not UTF-8 text: 1",
    ]
    expected = [
        ("B 1234 XYZ", "B1234XYZ", "81234XY2", "V1", "Budi Santoso", "car", "Toyota", "black", "blacklist"),
        ("ls15-ebc", "LS15EBC", "L515E8C", "V2b", "Alice W.", "car", "Ford", "blue", "whitelist"),
        ("M 3 N", "M3N", "M3N", "V10", "Last", "car", "", "", "whitelist"),
        ("Z 7 Q", "Z7Q", "27Q", "V7", "Zed, Jr.", "van", "VW", "white", ""),
    ]
    assert rows() == expected
    # Again: everything is an update and nothing changes.
    again = run("gate", path)
    assert again[-2] == (
        "imported vehicles.csv into vehicle list 'gate': 11 lines, 0 vehicles created, 4 updated, "
        "6 lines refused, in T s"
    )
    assert rows() == expected


def test_columns_in_any_order_and_left_out(tmp_path, gate):
    register(gate, "B 1234 XYZ", name="Kept", status="whitelist", brand="Toyota")
    path = tmp_path / "status.csv"
    path.write_text(" Status , PLATE_NUMBER\r\nblacklist,b 1234 xyz\r\nwhitelist,C 5 D\r\n")
    assert run("gate", path)[0] == (
        "imported status.csv into vehicle list 'gate': 2 lines, 1 vehicles created, 1 updated, "
        "0 lines refused, in T s"
    )
    assert [(v.plate_number, v.name, v.brand, v.status) for v in Vehicle.objects.order_by("plate")] == [
        ("b 1234 xyz", "Kept", "Toyota", "blacklist"),
        ("C 5 D", "", "", "whitelist"),
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty: the first line must be the header " + HEADER.strip()),
        (
            "plate,name\nB 1,x\n",
            "unknown column(s) in the header: 'plate' (the header is " + HEADER.strip() + ")",
        ),
        (
            "name,status\nx,y\n",
            "the header has no plate_number column (the header is " + HEADER.strip() + ")",
        ),
        ("plate_number,name,name\nB 1,x,y\n", "column(s) given twice in the header: name"),
    ],
)
def test_bad_files(tmp_path, gate, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(CommandError) as refused:
        run("gate", path)
    assert message in str(refused.value)
    assert snapshot() == (["gate"], [])


def test_the_list(tmp_path, db):
    path = tmp_path / "v.csv"
    path.write_text(HEADER + "B 1,,,,,,\n")
    with pytest.raises(CommandError, match="vehicle list 'gate' not found \\(use --create-list\\)"):
        run("gate", path)
    with pytest.raises(CommandError, match="invalid list_name 'bad name'"):
        run("bad name", path, "--create-list")
    with pytest.raises(CommandError, match="is not a file"):
        run("gate", tmp_path / "missing.csv")
    run("gate", path, "--create-list")
    assert list(VehicleList.objects.values_list("name", flat=True)) == ["gate"]
    assert rows() == [("B 1", "B1", "81", "", "", "", "", "", "")]


def test_the_vehicle_limit_refuses_lines(tmp_path, gate, settings, monkeypatch):
    settings.VEHICLE_MAX_VEHICLES = 3
    monkeypatch.setattr(import_vehicles, "BATCH", 2)
    path = tmp_path / "v.csv"
    path.write_text(HEADER + "".join(f"B {n},,,,,,\n" for n in range(1, 6)))
    assert run("gate", path) == [
        "line 4: registered vehicle limit reached (3 vehicles)",
        "line 5: registered vehicle limit reached (3 vehicles)",
        "imported v.csv into vehicle list 'gate': 5 lines, 3 vehicles created, 0 updated, "
        "2 lines refused, in T s",
        "refused lines by reason: registered vehicle limit reached (3 vehicles): 2",
    ]
    assert [plate for plate, *_ in rows()] == ["B 1", "B 2", "B 5"]


def test_a_large_file_is_streamed_in_batches(tmp_path, gate, django_assert_max_num_queries):
    path = tmp_path / "many.csv"
    with path.open("w") as handle:
        handle.write(HEADER)
        for n in range(3000):
            handle.write(f"K {n} AB,U{n},Owner {n},car,,,\n")
    # One upsert per batch of 500 (a few queries each), not one per line.
    with django_assert_max_num_queries(60):
        output = run("gate", path)
    assert output[0].startswith(
        "imported many.csv into vehicle list 'gate': 3000 lines, 3000 vehicles created"
    )
    assert Vehicle.objects.count() == 3000
    assert services.vehicle_match(list_name="gate", plate="K 2999 A8").kind == "confusable"


def test_a_nul_character_refuses_its_line_only(tmp_path, gate):
    path = tmp_path / "nul.csv"
    path.write_bytes(HEADER.encode() + b"N 4 P,\x00,x,,,,\nB 1,,,,,,\n")
    output = run("gate", path)
    assert output[0].startswith("line 2: ") and "NUL" in output[0].upper(), output
    assert output[1].startswith("imported nul.csv into vehicle list 'gate': 2 lines, 1 vehicles created")
    assert [plate for plate, *_ in rows()] == ["B 1"]
