"""The incremental bulk CSV parser (broker/gateway/bulk_csv.py): the same rows whatever the
chunking, line numbers where records start, and the errors that end the input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.gateway.bulk_csv import MAX_RECORD, CsvRows, Row, parse_csv
from broker.gateway.errors import ServiceError

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\r\nAAAA\n-----END CERTIFICATE-----"
TEXT = (
    "\ufeffID, SSL Client Certificate, tag:site\r\n"
    "dev1,,Lyon|Paris\r\n"
    f'dev2,"{PEM}",\n'
    "\n"
    'dev3,,"a, ""quoted"" value"\r'
    "dev4,,,extra\n"
    "dev5"
)
EXPECTED: list[Row] = [
    (2, "dev1", [{"name": "site", "value": "Lyon"}, {"name": "site", "value": "Paris"}], None,
     None),
    (3, "dev2", [], PEM, None),
    (8, "dev3", [{"name": "site", "value": 'a, "quoted" value'}], None, None),
    (9, "dev4", [], None, "4 cells for 3 columns"),
    (10, "dev5", [], None, None),
]


def feed_all(chunks: list[bytes]) -> list[Row]:
    parser = CsvRows()
    rows: list[Row] = []
    for chunk in chunks:
        rows += parser.feed(chunk)
    return rows + parser.close()


def test_whole_text() -> None:
    assert parse_csv(TEXT) == EXPECTED


def test_one_byte_at_a_time() -> None:
    data = TEXT.encode()
    assert feed_all([data[i:i + 1] for i in range(len(data))]) == EXPECTED


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, len(TEXT.encode())), max_size=12))
def test_any_chunking(cuts: list[int]) -> None:
    data = TEXT.encode()
    points = [0, *sorted(cuts), len(data)]
    assert feed_all([data[a:b] for a, b in zip(points, points[1:], strict=False)]) == EXPECTED


def test_rows_come_out_as_records_complete() -> None:
    parser = CsvRows()
    assert parser.feed(b"ID\na\nb") == [(2, "a", [], None, None)]
    assert parser.feed(b"\n") == [(3, "b", [], None, None)]
    assert parser.close() == []


@pytest.mark.parametrize("text", ["", "\ufeff", "Name\nx", "ID,colour\nx,red", "ID,tag:\nx,y",
                                  '"ID\n'])
def test_bad_header_refuses_everything(text: str) -> None:
    with pytest.raises(ServiceError) as info:
        parse_csv(text)
    assert info.value.status == 400


def test_unclosed_quote_ends_the_input() -> None:
    rows = parse_csv('ID,SSL Client Certificate\na,"open\nb,\nc,\n')
    assert [r[0] for r in rows] == [2]
    assert rows[0][1] is None and "not closed" in (rows[0][4] or "")


def test_record_too_long_ends_the_input() -> None:
    parser = CsvRows()
    rows = parser.feed(b'ID,SSL Client Certificate\nok,\nb,"')
    for _ in range(MAX_RECORD // 65536 + 2):
        rows += parser.feed(b"x" * 65535 + b"\n")
        if parser.done:
            break
    rows += parser.close()
    assert rows[0] == (2, "ok", [], None, None)
    assert len(rows) == 2 and rows[1][0] == 3 and "CSV syntax" in (rows[1][4] or "")


def test_not_utf8_ends_the_input() -> None:
    parser = CsvRows()
    rows = parser.feed(b"ID\na\n\xff\xfe\nb\n") + parser.close()
    assert rows[0] == (2, "a", [], None, None)
    assert len(rows) == 2 and "UTF-8" in (rows[1][4] or "") and parser.done


def test_a_line_without_end_is_bounded() -> None:
    parser = CsvRows()
    rows = parser.feed(b"ID\nok\n")
    for _ in range(MAX_RECORD // 65536 + 2):
        rows += parser.feed(b"y" * 65536)
    assert parser.done and rows[0] == (2, "ok", [], None, None)
    assert len(rows) == 2 and "line longer" in (rows[1][4] or "")
