"""Result files parsed strictly: base64 only when it decodes to the CSV, every column kept, bad rows kept."""

import base64
import json

import pytest

from archiver.fake_details import COLUMNS
from archiver.results import Parsed, parse_result_file

OPENAI = b"step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n" + (
    b"1,1.52347,0.0,,\n2,0.57719,0.0,0.9,0.5\n"
)
OPENAI_METRICS = [
    (1, "train_loss", 1.52347),
    (1, "train_accuracy", 0.0),
    (2, "train_loss", 0.57719),
    (2, "train_accuracy", 0.0),
    (2, "valid_loss", 0.9),
    (2, "valid_mean_token_accuracy", 0.5),
]


def test_a_plain_csv_is_read_as_csv() -> None:
    assert parse_result_file(OPENAI) == Parsed("csv", OPENAI_METRICS, [])


def test_base64_of_the_csv_is_read_as_base64() -> None:
    assert parse_result_file(base64.b64encode(OPENAI)) == Parsed("base64", OPENAI_METRICS, [])


def test_base64_split_over_lines_is_read_as_base64() -> None:
    encoded = base64.encodebytes(OPENAI * 20)  # MIME style: a newline every 76 characters
    assert parse_result_file(encoded).encoding == "base64"


def test_the_gateways_html_message_wrapper_is_opened() -> None:
    body = json.dumps({"html-message": base64.b64encode(OPENAI).decode()}).encode()
    assert parse_result_file(body, "application/json") == Parsed("html-message base64", OPENAI_METRICS, [])


def test_base64_of_something_else_is_not_taken_for_the_csv() -> None:
    body = base64.b64encode(b"no header here\n1,2\n")
    parsed = parse_result_file(body)
    assert parsed == Parsed(
        None, [], [(None, "not a result CSV: its first line names no step column", body.decode())]
    )


def test_a_csv_whose_text_is_also_valid_base64_is_read_as_csv() -> None:
    body = b"step\n1\n2\n"  # "step12" is not base64 of a CSV with a step column
    assert parse_result_file(body) == Parsed("csv", [], [])


@pytest.mark.parametrize("method", sorted(COLUMNS))
def test_every_methods_columns_become_metrics_unknown_ones_too(method: str) -> None:
    columns = COLUMNS[method]
    body = (",".join(columns) + "\n" + ",".join(str(i) for i in range(1, len(columns) + 1)) + "\n").encode()
    expected = [(1, name, float(i)) for i, name in enumerate(columns[1:], start=2)]
    assert parse_result_file(base64.b64encode(body)) == Parsed("base64", expected, [])


def test_azures_spaced_header_is_read() -> None:
    body = b"step, train_loss, train_mean_token_accuracy\n1, 0.5, 0.25\n"
    assert parse_result_file(body) == Parsed(
        "csv", [(1, "train_loss", 0.5), (1, "train_mean_token_accuracy", 0.25)], []
    )


def test_bad_rows_are_rejected_with_their_line_and_why_and_the_rest_kept() -> None:
    body = b"step,loss\n1,0.5\nx,0.4\n3,nan\n1,0.3\n4,0.2,9\n\n5,inf\n6,\n7,0.1\n"
    assert parse_result_file(body) == Parsed(
        "csv",
        [(1, "loss", 0.5), (7, "loss", 0.1)],
        [
            (3, "step 'x' is not a whole number", "x,0.4"),
            (4, "loss 'nan' is not a finite number", "3,nan"),
            (5, "step 1 appears again", "1,0.3"),
            (6, "3 cells where the header has 2", "4,0.2,9"),
            (8, "loss 'inf' is not a finite number", "5,inf"),
        ],
    )


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"", "the file is empty"),
        (b"\xff\xfe\x00garbage", "neither a CSV in UTF-8 nor base64 of one"),
        (b'{"error": "not a csv"}', "not a result CSV: its first line names no step column"),
    ],
)
def test_an_unreadable_file_is_one_reject_with_why(body: bytes, why: str) -> None:
    parsed = parse_result_file(body)
    assert (parsed.encoding, parsed.metrics, [r[:2] for r in parsed.rejects]) == (None, [], [(None, why)])


def test_a_header_naming_a_column_twice_is_rejected() -> None:
    assert parse_result_file(b"step,loss,loss\n1,2,3\n") == Parsed(
        None, [], [(1, "not a result CSV: column 'loss' appears twice", "step,loss,loss")]
    )
